"""PyREBox's `api` module for scripts: CallbackManager, machine state, and
the VM's keyboard, mouse and screen."""

from pyrebox.callbacks import CallbackManager  # noqa: F401
from pyrebox.machine import *  # noqa: F401,F403
from pyrebox.machine import __all__ as _machine_all
from pyrebox.ui import *  # noqa: F401,F403
from pyrebox.ui import __all__ as _ui_all

__all__ = ["CallbackManager", *_machine_all, *_ui_all]
