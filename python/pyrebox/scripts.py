"""Script modules: loading with requirements, handles, unloading.

A PyREBox script is a Python module (dotted name, e.g. `scripts.my_script`)
defining `initialize_callbacks(module_hdl, printer)` and `clean()`, and
optionally `requirements = [...]` (other scripts, loaded first).
A script that fails to import or initialise is reported with its traceback
and left unloaded; the VM keeps running.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import traceback
from types import ModuleType

from . import output


@dataclasses.dataclass
class LoadedScript:
    handle: int
    name: str
    module: ModuleType


class ScriptError(Exception):
    """A script could not be loaded; the message says why."""


class ScriptManager:
    def __init__(self, search_path: list[str]):
        for folder in reversed(search_path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        self._next_handle = 1
        self._by_name: dict[str, LoadedScript] = {}

    def loaded(self) -> list[LoadedScript]:
        return list(self._by_name.values())

    def load(self, name: str) -> int | None:
        """Loads `name` and its requirements; returns its handle, or None
        after reporting why it could not be loaded."""
        try:
            return self._load(name, chain=())
        except ScriptError as e:
            output.error(str(e))
            return None

    def _load(self, name: str, chain: tuple[str, ...]) -> int:
        if name in self._by_name:
            return self._by_name[name].handle
        if name in chain:
            raise ScriptError(
                f"script requirements form a cycle: {' -> '.join(chain + (name,))}")
        module = self._import(name)
        for required in getattr(module, "requirements", []) or []:
            try:
                self._load(required, chain + (name,))
            except ScriptError as e:
                raise ScriptError(f"script {name} requires {required}, which failed: {e}") from None
        init = getattr(module, "initialize_callbacks", None)
        if not callable(init):
            raise ScriptError(
                f"script {name} ({module.__file__}) defines no "
                f"initialize_callbacks(module_hdl, printer) function")
        handle = self._next_handle  # taken only when initialisation succeeds
        try:
            init(handle, output.printer_for(name))
        except Exception:
            raise ScriptError(
                f"script {name} raised in initialize_callbacks; it is not loaded:\n"
                f"{traceback.format_exc().rstrip()}") from None
        self._next_handle += 1
        self._by_name[name] = LoadedScript(handle, name, module)
        output.message(f"loaded script {name} (handle {handle})")
        return handle

    def _import(self, name: str) -> ModuleType:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
                raise ScriptError(
                    f"script module {name} not found (looked in: "
                    f"{', '.join(p for p in sys.path[:3])}, ...); script names are "
                    f"dotted module paths relative to the current folder or the "
                    f"folder of pyrebox.conf") from None
            raise ScriptError(
                f"script {name} failed to import:\n{traceback.format_exc().rstrip()}") from None
        except Exception:
            raise ScriptError(
                f"script {name} failed to import:\n{traceback.format_exc().rstrip()}") from None

    def unload_all(self) -> None:
        """Unloads in reverse load order (dependents before requirements)."""
        for script in reversed(list(self._by_name.values())):
            self._clean(script)
        self._by_name.clear()

    def _clean(self, script: LoadedScript) -> None:
        clean = getattr(script.module, "clean", None)
        if callable(clean):
            try:
                clean()
            except Exception:
                output.error(f"script {script.name} raised in clean():\n"
                             f"{traceback.format_exc().rstrip()}")
