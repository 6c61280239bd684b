"""Script management for scripts and the console: the api functions
import_module, unload_module, reload_module and get_loaded_modules.

Problems (unknown script, import error, a script others require) are
printed, not raised, as PyREBox's own commands do; the return value says
whether it worked.
"""

from __future__ import annotations

from . import output
from .scripts import ScriptError, ScriptManager

_current: ScriptManager | None = None


def use(manager: ScriptManager | None) -> None:
    """Makes `manager` the one these functions (and the console's and the
    shell's commands) work on; the runtime sets it at boot."""
    global _current
    _current = manager


def manager() -> ScriptManager | None:
    """The script manager of this run (None outside QEMU)."""
    return _current


def _manager() -> ScriptManager:
    if _current is None:
        raise RuntimeError("scripts are not available: PyREBox is not running inside QEMU")
    return _current


def import_module(module_name: str) -> int | None:
    """Loads the script `module_name` (its requirements first); returns its
    handle, or None after printing why it could not be loaded. A script
    loaded already keeps its handle and is not loaded twice."""
    return _manager().load(module_name)


def unload_module(module_handle: int) -> bool:
    """Unloads the script `module_handle` (its clean() runs, and any callback
    it left is removed). A script that loaded scripts require is not
    unloaded: the message names them."""
    try:
        _manager().unload(module_handle)
        return True
    except ScriptError as e:
        output.error(str(e))
        return False


def reload_module(module_handle: int) -> bool:
    """Unloads the script and loads its current code with the same handle."""
    try:
        _manager().reload(module_handle)
        return True
    except ScriptError as e:
        output.error(str(e))
        return False


def get_loaded_modules() -> list[dict]:
    """Every script loaded during this run: [{module_handle, module_name,
    is_loaded}], by handle."""
    return [{"module_handle": s.handle, "module_name": s.name, "is_loaded": s.is_loaded}
            for s in _manager().known()]


__all__ = ["import_module", "unload_module", "reload_module", "get_loaded_modules"]
