"""Symbol tables of kernels nobody prepared one for.

With no table given (no plugin argument isf=, no `[SYMBOLS] isf`), the
plugin finds the running kernel's banner in guest memory once the kernel
runs and calls `table_for_running_kernel`: the table of that banner from
the cache, or one built from the kernel's own `.BTF` and kallsyms tables in
guest memory (pyrebox.symbols) and then cached. The guest is paused while
it runs (the plugin freezes the vCPUs and the guest's clock), so nothing of
the boot is missed; the next boot of the same kernel takes the cached table.

Cache: $XDG_CACHE_HOME/pyrebox/kernels (default ~/.cache/pyrebox/kernels),
one file per kernel banner, `<release>-<hash of the banner>.isf.json.xz`.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

from . import output
from .native import pyrebox as _pyrebox

MIN_KERNEL_RANGE = 4 << 20


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyrebox", "kernels")


def release_of(banner: str) -> str:
    """The release in 'Linux version RELEASE (...' (file-name safe)."""
    words = banner.split()
    release = words[2] if len(words) > 2 else "unknown"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", release)[:64]


def cache_path(banner: str) -> str:
    digest = hashlib.sha256(banner.encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"{release_of(banner)}-{digest}.isf.json.xz")


def table_for_running_kernel(banner: bytes, banner_paddr: int) -> str:
    """The path of the ISF for the kernel whose linux_banner is `banner`
    (at guest-physical `banner_paddr`), built from guest memory unless
    cached. Raises with the reason when no table can be made."""
    from . import symbols

    text = banner.decode("ascii", "replace")
    release = release_of(text)
    path = cache_path(text)
    if os.path.isfile(path):
        output.message(f"Linux {release}: symbol table from the cache ({path})")
        return path
    output.message(f"Linux {release}: no symbol table given; building one from guest memory "
                   "(once per kernel; the guest is paused meanwhile)")
    started, cpu = time.monotonic(), time.thread_time()
    # The kernel image is physically contiguous and megabytes long: the
    # firmware's ROM and the low 640 KiB cannot hold it, and leaving them
    # out keeps the search within RAM's extent (the BIOS sits below 4 GiB).
    ranges = [(start, end) for start, end in _pyrebox.memory_map() if end - start >= MIN_KERNEL_RANGE]
    if not ranges:
        raise RuntimeError("guest memory has no RAM range large enough to hold a Linux kernel")
    try:
        result = symbols.generate_from_memory(_pyrebox.read_physical, max(end for _, end in ranges),
                                              ranges=ranges, name=f"the memory of the guest's Linux {release}")
    except symbols.KernelImageError as error:
        raise RuntimeError(str(error)) from None
    os.makedirs(cache_dir(), mode=0o700, exist_ok=True)
    symbols.write_isf(result.isf, path)  # atomically
    output.message(f"Linux {release}: built {path} in {time.monotonic() - started:.1f}s "
                   f"({time.thread_time() - cpu:.1f}s of CPU; {result.user_types} types, "
                   f"{result.symbols} symbols)")
    return path
