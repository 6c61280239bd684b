"""PyREBox's `api` module for scripts: CallbackManager and machine state."""

from pyrebox.callbacks import CallbackManager  # noqa: F401
from pyrebox.machine import *  # noqa: F401,F403
from pyrebox.machine import __all__ as _machine_all

__all__ = ["CallbackManager", *_machine_all]
