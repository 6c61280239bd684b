"""Building native triggers on demand.

A trigger is named by a path with or without `.so` (PyREBox's convention):
`triggers/trigger_bp_memrange` means the source `triggers/trigger_bp_memrange.cpp`
(or `.c`) and the object `triggers/trigger_bp_memrange-<target>-softmmu.so`,
built for the running QEMU target, rebuilt when the source or the SDK headers
are newer. Relative paths resolve against the current folder, then the folder
of pyrebox.conf.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sysconfig

from . import output, paths

SDK = os.path.join(paths.ROOT, "include", "pyrebox", "sdk")


class TriggerError(ValueError):
    """A trigger that cannot be found, built or loaded; the message says why."""


# Folders a relative trigger path resolves against after the current one
# (the runtime gives the folder of pyrebox.conf).
_search_path: list[str] = []


def set_search_path(folders: list[str]) -> None:
    _search_path[:] = [f for f in folders if f]


def _resolve(path: str) -> str:
    if os.path.isabs(path):
        return os.path.normpath(path)
    folders = [os.getcwd(), *_search_path]
    for folder in folders:
        candidate = os.path.normpath(os.path.join(folder, path))
        if any(os.path.exists(candidate + ext) for ext in ("", ".c", ".cpp", ".so")):
            return candidate
    return os.path.join(folders[0], path)


def _newest_sdk_mtime() -> float:
    return max(os.path.getmtime(p) for p in glob.glob(os.path.join(SDK, "*.h")))


def build(path: str, is_64bit: bool) -> tuple[str, bool]:
    """Returns (the built object's path, whether the trigger uses the Python C
    API and so must run with the GIL). Raises TriggerError with the
    compiler's message when the build fails."""
    base = _resolve(path[:-3] if path.endswith(".so") else path)
    sources = [base + ext for ext in (".cpp", ".c") if os.path.isfile(base + ext)]
    target = "x86_64" if is_64bit else "i386"
    obj = f"{base}-{target}-softmmu.so"
    if not sources:
        if os.path.isfile(obj):
            return obj, _uses_python(obj)
        raise TriggerError(f"trigger {path}: no source {base}.cpp or {base}.c and no built "
                           f"{obj}")
    source = sources[0]
    stale = (not os.path.isfile(obj) or os.path.getmtime(obj) < os.path.getmtime(source)
             or os.path.getmtime(obj) < _newest_sdk_mtime())
    if stale:
        compiler = "g++" if source.endswith(".cpp") else "gcc"
        std = "-std=c++17" if source.endswith(".cpp") else "-std=gnu11"
        define = "-DTARGET_X86_64" if is_64bit else "-DTARGET_I386"
        # A name of this process's own: two VMs may build the same trigger
        # at once; the atomic rename makes the last complete build win.
        partial = f"{obj}.{os.getpid()}.partial"
        cmd = [compiler, std, "-O2", "-fPIC", "-shared", "-Wall", define, f"-I{SDK}",
               f"-I{sysconfig.get_paths()['include']}", "-o", partial, source]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            message = (f"trigger {source} does not compile ({' '.join(cmd)}):\n"
                       f"{(result.stderr or result.stdout).rstrip()}")
            output.error(message)
            raise TriggerError(message)
        os.replace(partial, obj)
    return obj, _uses_python(obj)


def _uses_python(obj: str) -> bool:
    result = subprocess.run(["nm", "-D", "--undefined-only", obj], capture_output=True, text=True)
    return any(line.split()[-1].startswith(("Py", "_Py")) for line in result.stdout.splitlines()
               if line.strip())
