"""Machine state for scripts: CPU registers, memory, I/O ports, monitored
processes. The `api` module re-exports these under PyREBox's names.

Unreadable or unmapped memory raises InvalidAddress (a ValueError) naming
the address and address space; nothing partial is returned.
"""

from __future__ import annotations

import contextlib

from .cpu import Cpu, CpuWriteError, register_names, write_register
from .native import pyrebox as _pyrebox


def __getattr__(name):
    # The exception classes are the native module's: taken on first use, so
    # this module imports outside QEMU.
    if name in ("InvalidAddress", "IntrospectionError"):
        value = globals()[name] = getattr(_pyrebox, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _bytes(buff, length=None) -> bytes:
    if isinstance(buff, str):
        data = buff.encode("latin-1")
    elif isinstance(buff, (bytes, bytearray, memoryview)):
        data = bytes(buff)
    else:
        raise TypeError(f"buffer must be bytes or str, got {type(buff).__name__}")
    if length is not None:
        if length > len(data):
            raise ValueError(f"length {length} is longer than the buffer ({len(data)} bytes)")
        data = data[:length]
    return data


def _check_len(length) -> None:
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")


def get_num_cpus() -> int:
    return _pyrebox.num_cpus()


def r_cpu(cpu_index: int = 0) -> Cpu:
    """A snapshot of vCPU `cpu_index`'s registers."""
    return Cpu(cpu_index).freeze()


def w_r(cpu_index: int, regname: str, value: int) -> None:
    """Writes a register. Writing the PC (RIP/EIP/PC) inside a callback
    redirects execution there when the callback returns."""
    write_register(cpu_index, regname, value)


def r_pa(addr: int, length: int) -> bytes:
    _check_len(length)
    return _pyrebox.read_physical(addr, length)


def w_pa(addr: int, buff, length=None) -> None:
    _pyrebox.write_physical(addr, _bytes(buff, length))


def r_va(pgd: int, addr: int, length: int) -> bytes:
    _check_len(length)
    return _pyrebox.read_virtual(pgd, addr, length)


PAGE = 4096


def read_terminated(read, addr: int, max_len: int, unit: int = 1) -> tuple[bytes, bool]:
    """(bytes before the terminator, found) of a string of `unit`-byte
    characters at `addr` ending in a zero character, at most `max_len`
    bytes: read a page at a time with `read(addr, length)`, so a string that
    ends before an unmapped page reads. `found` is False when `max_len`
    bytes held no terminator (the string is cut there)."""
    _check_len(max_len)
    out = bytearray()
    scanned = 0  # characters before this offset hold no terminator
    zero = bytes(unit)
    while len(out) < max_len:
        at = addr + len(out)
        out += read(at, min(max_len - len(out), PAGE - (at % PAGE)))
        while scanned + unit <= len(out):
            if out[scanned:scanned + unit] == zero:
                return bytes(out[:scanned]), True
            scanned += unit
    return bytes(out[:scanned]), False


def read_cstr(pgd: int, addr: int, max_len: int = 4096, encoding: str | None = "utf-8",
              errors: str = "backslashreplace"):
    """The NUL-terminated string at `addr` in address space `pgd`, at most
    `max_len` bytes (cut there when no NUL comes first): a str decoded with
    `encoding` (bytes not valid in it escaped as \\xNN), or the bytes with
    encoding=None. InvalidAddress names the first address that does not read."""
    data, _ = read_terminated(lambda a, n: r_va(pgd, a, n), addr, max_len)
    return data if encoding is None else data.decode(encoding, errors)


def read_utf16(pgd: int, addr: int, max_len: int = 4096, errors: str = "backslashreplace"):
    """The UTF-16LE string at `addr` ending in a zero 16-bit unit, at most
    `max_len` bytes, as a str (as read_cstr)."""
    data, _ = read_terminated(lambda a, n: r_va(pgd, a, n), addr, max_len, unit=2)
    return data.decode("utf-16-le", errors)


def w_va(pgd: int, addr: int, buff, length=None) -> None:
    _pyrebox.write_virtual(pgd, addr, _bytes(buff, length))


def va_to_pa(pgd: int, addr: int) -> int:
    return _pyrebox.translate(pgd, addr)


def r_ioport(addr: int, size: int) -> int:
    return _pyrebox.io_read(addr, size)


def w_ioport(addr: int, size: int, value: int) -> None:
    _pyrebox.io_write(addr, size, value)


def start_monitoring_process(pgd: int) -> None:
    _pyrebox.start_monitoring(pgd)


def stop_monitoring_process(pgd: int, force: bool = False) -> None:
    _pyrebox.stop_monitoring(pgd)


def is_monitored_process(pgd: int) -> bool:
    return _pyrebox.is_monitored(pgd)


def get_running_process(cpu_index: int = 0) -> int:
    """The pgd (normalised CR3) of the address space vCPU `cpu_index` runs in."""
    return _pyrebox.current_pgd(cpu_index)


def is_kernel_running(cpu_index: int = 0) -> bool:
    """True when vCPU `cpu_index` runs at privilege level 0."""
    return (_pyrebox.read_register(cpu_index, "cs") & 3) == 0


def get_os_bits() -> int:
    """64 or 32: the guest kernel's word size (from its symbol table, else
    the emulated target's)."""
    return _pyrebox.os_bits()


def get_process_list() -> list[dict]:
    """The guest's processes (thread group leaders), each a dict with pid,
    pgd (0 for kernel threads), name, kaddr (the task_struct) and ppid.
    Raises IntrospectionError when introspection is off or fails."""
    return _pyrebox.linux_processes()


def get_process_arguments(pid: int) -> dict:
    """What process `pid` was started with, as its exec left it: argv (a
    list of str), envc (how many environment strings) and execfn (the path
    it was executed as). Raises IntrospectionError for an unknown pid, a
    kernel thread or memory that does not read."""
    task = next((p["kaddr"] for p in get_process_list() if p["pid"] == pid), None)
    if task is None:
        raise ValueError(f"no process with pid {pid}")
    raw = _pyrebox.linux_exec_arguments(task)
    decode = lambda b: b.decode("utf-8", "backslashreplace")  # noqa: E731
    return {"argv": [decode(a) for a in raw["argv"]], "envc": raw["envc"],
            "execfn": decode(raw["execfn"])}


def get_module_list(pgd: int) -> list[dict]:
    """The files the process `pgd` maps (main binary, loader, libraries...),
    each {name, fullname, base, size, symbols_resolved}, sorted by base;
    pgd 0 gives the kernel and its loaded modules. Raises
    IntrospectionError when introspection is off or fails.
    symbols_resolved says whether the module's symbols could be read (a
    file whose pages are not all in memory yet is tried again next call).
    Each dict also has inode, dev and regions: for a kernel module its
    memory regions [{name, base, size}] (they need not be contiguous; base
    and size are /proc/modules'), empty otherwise."""
    _check_pgd(pgd)
    return _pyrebox.linux_modules(pgd)


def _check_pgd(pgd) -> None:
    if not isinstance(pgd, int) or isinstance(pgd, bool) or pgd < 0:
        raise ValueError(f"pgd must be a non-negative int, got {pgd!r}")


def get_symbol_list(pgd=None) -> list[dict]:
    """Symbols as {mod, mod_fullname, name, addr}. pgd 0: the kernel
    (vmlinux's symbol table, slid) and each loaded kernel module (its
    kallsyms); a process's pgd: the dynamic symbols of every file it maps
    whose symbols are resolved; None: the kernel, then each file mapped by
    any process, once, at its address in the first process (in process-list
    order) that has it resolved. Raises IntrospectionError when
    introspection is off or fails, or no process has `pgd`."""
    if pgd is not None:
        _check_pgd(pgd)
    return _pyrebox.linux_symbols(pgd)


def sym_to_va(pgd: int, mod: str, func: str):
    """The address of symbol `func` of module `mod` (its basename, e.g.
    "libc.so.6", or its full path; "vmlinux" or a kernel module's name such
    as "crc7" for the kernel, found from any pgd) in the address space
    `pgd`, or None when there is no such module, symbol or process, or the
    module's symbols are not resolved yet."""
    _check_pgd(pgd)
    if not isinstance(mod, str) or not isinstance(func, str):
        raise TypeError(f"mod and func must be str, got {mod!r} and {func!r}")
    return _pyrebox.linux_sym_to_va(pgd, mod, func)


_clock_stops = 0  # nested guest_clock_stopped() blocks


@contextlib.contextmanager
def guest_clock_stopped():
    """`with api.guest_clock_stopped(): ...` — the guest's clock (QEMU's
    virtual clock and the TSC) does not advance while the block runs, so
    long script work inside a callback (a Volatility plugin, a dump) does
    not reach the guest as a jump of time (timers firing at once, stall
    warnings). The shell does the same while it is open. Blocks nest; only
    inside a callback (the vCPU is stopped there) is the clock stopped,
    elsewhere the block just runs."""
    global _clock_stops
    stop = _clock_stops == 0 and _pyrebox.callback_vcpu() >= 0
    stopped = stop and _pyrebox.stop_guest_clock()
    _clock_stops += 1
    try:
        yield
    finally:
        _clock_stops -= 1
        if stopped:
            _pyrebox.start_guest_clock()


def introspection_pending() -> bool:
    """Whether introspection is not available yet but will be (the guest's
    kernel has not been located yet, or its symbol table is being built),
    rather than off for good."""
    return bool(_pyrebox.linux_enabled() or _pyrebox.linux_table_pending())


def symbol_lookup(pgd: int, mod: str, func: str):
    """sym_to_va with the reason: (address, None) when found, else (None,
    why), why being "unknown process" (no process has `pgd`), "unknown
    module", "unknown symbol" (the module's symbols read and lack it) or
    "not readable yet" (the module is mapped but its symbols are in neither
    the process's memory nor the kernel's page cache yet: try again later,
    or use a pending breakpoint)."""
    _check_pgd(pgd)
    if not isinstance(mod, str) or not isinstance(func, str):
        raise TypeError(f"mod and func must be str, got {mod!r} and {func!r}")
    address, why = _pyrebox.linux_symbol_lookup(pgd, mod, func)
    return address, why


def va_to_sym(pgd: int, addr: int):
    """(module name, symbol name) for the address `addr` of address space
    `pgd`: in a mapped ELF file, the dynamic symbol whose [addr, addr+size)
    holds it; in the kernel (pgd 0 or a kernel address), the nearest
    preceding symbol inside vmlinux or the kernel module holding it. None
    when no module or symbol holds it."""
    _check_pgd(pgd)
    if not isinstance(addr, int) or isinstance(addr, bool) or addr < 0:
        raise ValueError(f"addr must be a non-negative int, got {addr!r}")
    found = _pyrebox.linux_va_to_sym(pgd, addr)
    return None if found is None else tuple(found)


KERNEL_BOTTOM = 0xFFFF800000000000  # the lowest x86-64 kernel address (upper half)


def address_lookup(pgd: int, addr: int):
    """va_to_sym with the reason: ((mod, func), None) when found, else
    (None, why), why being "unknown process" (no process has `pgd`),
    "unknown module" (no mapped file or kernel module holds `addr`),
    "unknown symbol" (the module holding it has its symbols read, and none
    covers `addr`: a static function, a PLT stub) or "not readable yet"
    (the module holding it is mapped but its symbols are in neither the
    process's memory nor the page cache yet)."""
    found = va_to_sym(pgd, addr)
    if found is not None:
        return found, None
    space = 0 if addr >= KERNEL_BOTTOM else pgd
    if space and not any(p["pgd"] == space for p in get_process_list()):
        return None, "unknown process"
    for m in get_module_list(space):
        if m["base"] <= addr < m["base"] + m["size"]:
            return None, "unknown symbol" if m["symbols_resolved"] else "not readable yet"
    return None, "unknown module"


def symbol_list_lookup(pgd=None):
    """get_symbol_list with what it lacks: (symbols, not_readable), where
    not_readable lists the modules whose symbols are "not readable yet"
    (mapped, their symbols in neither memory nor the page cache), whose
    symbols the list therefore lacks: each {name, fullname, base, size,
    pgd}. pgd None: the files no process has readable (each given once,
    with the first process that maps it)."""
    symbols = get_symbol_list(pgd)
    if pgd is not None:
        spaces = [pgd]
    else:
        spaces = [0] + [p["pgd"] for p in get_process_list() if p["pgd"]]
    readable, missing = set(), {}
    for space in spaces:
        try:
            modules = get_module_list(space)
        except RuntimeError:  # a process that exited meanwhile
            if pgd is not None:
                raise
            continue
        for m in modules:
            key = m.get("fullname") or m["name"]
            if m["symbols_resolved"]:
                readable.add(key)
            elif key not in missing:
                missing[key] = {"name": m["name"], "fullname": m.get("fullname"),
                                "base": m["base"], "size": m["size"], "pgd": space}
    return symbols, [m for key, m in missing.items() if key not in readable]


__all__ = ["InvalidAddress", "IntrospectionError", "get_os_bits", "get_process_list",
           "get_module_list", "get_process_arguments", "get_symbol_list", "sym_to_va", "symbol_lookup", "va_to_sym", "address_lookup", "symbol_list_lookup", "guest_clock_stopped", "Cpu", "CpuWriteError", "register_names", "get_num_cpus", "r_cpu", "w_r", "r_pa",
           "w_pa", "r_va", "w_va", "read_cstr", "read_utf16", "va_to_pa", "r_ioport", "w_ioport",
           "start_monitoring_process", "stop_monitoring_process", "is_monitored_process",
           "get_running_process", "is_kernel_running"]
