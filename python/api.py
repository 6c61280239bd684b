"""PyREBox's `api` module for scripts: CallbackManager, breakpoints,
function returns, snapshots, machine state, backtraces, script modules, and the
VM's keyboard, mouse and screen."""

from pyrebox.backtrace import UnwindError, backtrace  # noqa: F401
from pyrebox.breakpoints import BP  # noqa: F401
from pyrebox.callbacks import CallbackManager  # noqa: F401
from pyrebox.machine import *  # noqa: F401,F403
from pyrebox.machine import __all__ as _machine_all
from pyrebox.returns import on_return, pending_returns  # noqa: F401
from pyrebox.script_api import *  # noqa: F401,F403
from pyrebox.script_api import __all__ as _script_all
from pyrebox.snapshots import load_vm, save_vm  # noqa: F401
from pyrebox.ui import *  # noqa: F401,F403
from pyrebox.volatility import VolatilityError, save_memory, vol  # noqa: F401
from pyrebox.ui import __all__ as _ui_all

__all__ = ["CallbackManager", "BP", "backtrace", "UnwindError", "on_return", "pending_returns", "save_vm", "load_vm", "vol", "save_memory", "VolatilityError", *_machine_all, *_script_all,
           *_ui_all]
