"""The one way into `_pyrebox`, the native module the QEMU plugin embeds.

Every module of the package reaches the plugin through `native.pyrebox`
(`from .native import pyrebox as _pyrebox`), never by importing `_pyrebox`
itself. The real module is imported on first use, so the package imports
outside QEMU too; there a call fails with NotAvailable unless a stand-in was
installed with `install()` (the unit tests' fake).

An attribute read through the proxy is remembered on it: after the first
call, `_pyrebox.read_register` costs what a module attribute costs.
"""

from __future__ import annotations

import importlib


class NotAvailable(RuntimeError):
    """PyREBox's native module is missing: the code runs outside QEMU."""


_module = None      # the installed stand-in or the imported `_pyrebox`
_imported = False   # the real module was looked for (found or not)


def _load():
    global _module, _imported
    if _module is None and not _imported:
        _imported = True
        try:
            _module = importlib.import_module("_pyrebox")
        except ImportError:
            _module = None
    return _module


def available() -> bool:
    """True inside QEMU (or with a stand-in installed)."""
    return _load() is not None


def install(module) -> None:
    """Uses `module` as `_pyrebox` from now on (tests: a fake); None goes back
    to looking for the real one."""
    global _module, _imported
    _module, _imported = module, module is not None
    pyrebox.__dict__.clear()


class _Proxy:
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        module = _load()
        if module is None:
            raise NotAvailable(f"_pyrebox.{name}: PyREBox's native module exists only "
                               f"inside QEMU (the plugin embeds it)")
        value = getattr(module, name)
        self.__dict__[name] = value
        return value

    def __repr__(self) -> str:
        return f"<PyREBox native module {_module!r}>"


pyrebox = _Proxy()
