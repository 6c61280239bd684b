"""Script modules: loading with requirements, handles, unloading.

A PyREBox script is a Python module (dotted name, e.g. `scripts.my_script`)
defining `initialize_callbacks(module_hdl, printer)` and `clean()`, and
optionally `requirements = [...]` (other scripts, loaded first).
A script that fails to import or initialise is reported with its traceback
and left unloaded; the VM keeps running.

Scripts can be loaded, unloaded and reloaded at any time (console commands
import_module / unload_module / reload_module, or the api functions of the
same names). A script keeps its handle for the life of the VM: unloading
marks it not loaded, reloading (or importing it again) re-imports its code
and initialises it with the same handle. Unloading calls its clean() and then
removes any callback it left registered, so no callback of an old version
survives. A script other loaded scripts require is not unloaded: the message
names them (unload those first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import os
import sys
import traceback
from types import ModuleType

from . import native, output
from .callbacks import batch, remove_callbacks_of


@dataclasses.dataclass
class LoadedScript:
    handle: int
    name: str
    module: ModuleType
    is_loaded: bool = True

    @property
    def requirements(self) -> list[str]:
        return list(getattr(self.module, "requirements", []) or [])


def _registration_batch():
    """A callback registration batch (callbacks.batch), or nothing outside
    QEMU (no native module), where no callbacks exist."""
    return batch() if native.available() else contextlib.nullcontext()


def _drop_bytecode(module: ModuleType) -> None:
    source = getattr(module, "__file__", None)
    if source and source.endswith(".py"):
        try:
            os.unlink(importlib.util.cache_from_source(source))
        except (OSError, NotImplementedError, ValueError):
            pass


class ScriptError(Exception):
    """A script could not be loaded; the message says why."""


class ScriptManager:
    def __init__(self, search_path: list[str]):
        self.search_path = list(search_path)
        for folder in reversed(search_path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        self._next_handle = 1
        self._by_name: dict[str, LoadedScript] = {}  # every script ever loaded

    def module_names(self, prefix: str, limit: int = 200) -> list[str]:
        """Dotted names of script modules (a .py file, or a package folder
        with __init__.py) in the search path that start with `prefix`,
        for completion: the package `prefix` names so far is listed, one
        level at a time; at most `limit` names."""
        package, _, _ = prefix.rpartition(".")
        parts = package.split(".") if package else []
        if any(not p.isidentifier() for p in parts):
            return []
        names = set()
        for folder in self.search_path:
            where = os.path.join(folder, *parts)
            try:
                entries = sorted(os.scandir(where), key=lambda e: e.name)[:4096]
            except OSError:
                continue
            for entry in entries:
                stem = entry.name[:-3] if entry.name.endswith(".py") else entry.name
                if not stem.isidentifier() or stem == "__init__":
                    continue
                is_package = entry.is_dir() and os.path.isfile(os.path.join(entry.path,
                                                                            "__init__.py"))
                if not (is_package or (entry.name.endswith(".py") and entry.is_file())):
                    continue
                name = ".".join(parts + [stem]) + ("." if is_package else "")
                if name.startswith(prefix):
                    names.add(name)
        return sorted(names)[:limit]

    def owner_name(self, handle: int) -> str | None:
        """"script NAME" for the loaded script of `handle`, else None."""
        for script in self.loaded():
            if script.handle == handle:
                return f"script {script.name}"
        return None

    def loaded(self) -> list[LoadedScript]:
        """Scripts loaded now, in load order."""
        return [s for s in self._by_name.values() if s.is_loaded]

    def known(self) -> list[LoadedScript]:
        """Every script loaded at some point (loaded or not now), by handle."""
        return sorted(self._by_name.values(), key=lambda s: s.handle)

    def by_handle(self, handle: int) -> LoadedScript:
        for script in self._by_name.values():
            if script.handle == handle:
                return script
        known = ", ".join(f"{s.handle} ({s.name})" for s in self.known()) or "none"
        raise ScriptError(f"no script with handle {handle!r} (known: {known})")

    def load(self, name: str) -> int | None:
        """Loads `name` and its requirements; returns its handle, or None
        after reporting why it could not be loaded."""
        try:
            return self._load(name, chain=())
        except ScriptError as e:
            output.error(str(e))
            return None

    def _load(self, name: str, chain: tuple[str, ...]) -> int:
        previous = self._by_name.get(name)
        if previous is not None and previous.is_loaded:
            return previous.handle
        if name in chain:
            raise ScriptError(
                f"script requirements form a cycle: {' -> '.join(chain + (name,))}")
        module = self._import(name, fresh=previous is not None)
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
        # A new handle is taken only when initialisation succeeds; a script
        # loaded before keeps its handle.
        handle = previous.handle if previous is not None else self._next_handle
        try:
            init(handle, output.printer_for(name))
        except Exception:
            self._remove_leftover_callbacks(name, handle, quiet=True)
            raise ScriptError(
                f"script {name} raised in initialize_callbacks; it is not loaded:\n"
                f"{traceback.format_exc().rstrip()}") from None
        if previous is None:
            self._next_handle += 1
            self._by_name[name] = LoadedScript(handle, name, module)
        else:
            previous.module, previous.is_loaded = module, True
        output.message(f"loaded script {name} (handle {handle})")
        return handle

    def _import(self, name: str, fresh: bool = False) -> ModuleType:
        try:
            if fresh and name in sys.modules:
                # Picks up edited code: the module is executed again (its
                # cached bytecode is dropped: an edit within the same second
                # and of the same size would not invalidate it).
                module = sys.modules[name]
                _drop_bytecode(module)
                importlib.invalidate_caches()
                return importlib.reload(module)
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

    def dependents(self, name: str) -> list[str]:
        """Loaded scripts that list `name` in their requirements."""
        return [s.name for s in self.loaded() if name in s.requirements]

    def unload(self, handle: int) -> None:
        """Unloads the script `handle`: its clean() runs, then any callback
        it left is removed. Raises ScriptError (not loaded, unknown handle,
        or required by loaded scripts, which are named)."""
        script = self.by_handle(handle)
        if not script.is_loaded:
            raise ScriptError(f"script {script.name} (handle {handle}) is not loaded")
        dependents = self.dependents(script.name)
        if dependents:
            raise ScriptError(
                f"script {script.name} (handle {handle}) is required by "
                f"{', '.join(dependents)}, which {'is' if len(dependents) == 1 else 'are'} "
                f"loaded: nothing was unloaded; unload "
                f"{'it' if len(dependents) == 1 else 'them'} first")
        self._clean(script)
        script.is_loaded = False
        output.message(f"unloaded script {script.name} (handle {handle})")

    def reload(self, handle: int) -> int:
        """Unloads (if loaded) and loads again the script `handle` from its
        current source, with the same handle. Scripts that require it stay
        loaded (they keep references to the old version's objects). Raises
        ScriptError when the new version cannot be loaded; the script is
        then not loaded."""
        script = self.by_handle(handle)
        if script.is_loaded:
            self._clean(script)
            script.is_loaded = False
        self._load(script.name, chain=())
        return handle

    def unload_all(self) -> None:
        """Unloads in reverse load order (dependents before requirements)."""
        for script in reversed(self.loaded()):
            self._clean(script)
            script.is_loaded = False

    def _clean(self, script: LoadedScript) -> None:
        # The script's clean() and the leftovers' removal: one plan change.
        with _registration_batch():
            clean = getattr(script.module, "clean", None)
            if callable(clean):
                try:
                    clean()
                except Exception:
                    output.error(f"script {script.name} raised in clean():\n"
                                 f"{traceback.format_exc().rstrip()}")
            self._remove_leftover_callbacks(script.name, script.handle)

    @staticmethod
    def _remove_leftover_callbacks(name: str, handle: int, quiet: bool = False) -> None:
        if not native.available():  # outside QEMU: no callbacks exist
            return
        count = remove_callbacks_of(handle)
        if count and not quiet:
            output.warning(f"script {name} left {count} callback(s) registered after "
                           f"clean(); they were removed")
