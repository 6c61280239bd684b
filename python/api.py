"""PyREBox's `api` module for scripts: CallbackManager and machine state."""

from pyrebox.callbacks import CallbackManager  # noqa: F401
from pyrebox.machine import *  # noqa: F401,F403
from pyrebox.machine import __all__ as _machine_all
from pyrebox.script_api import *  # noqa: F401,F403
from pyrebox.script_api import __all__ as _script_all

__all__ = ["CallbackManager", *_machine_all, *_script_all]
