"""System-call names from the running kernel's own tables.

The numbering is the kernel's: entry N of `sys_call_table` (x86-64, the
`syscall` path) or `ia32_sys_call_table` (the 32-bit paths) points at the
handler of call N, whose symbol names it (`__x64_sys_openat`,
`__ia32_compat_sys_open`, `__ia32_sys_getpid`; `sys_ni_syscall` and
`__x64_sys_ni_syscall` for unused numbers). No table of PyREBox's own: a
kernel that adds or renumbers calls is read as it is.

Kernels that dispatch through a switch instead (`ia32_sys_call`,
`x64_sys_call`: 6.9+, and stable kernels with the branch-history-injection
fixes, whose 32-bit table is gone) are read from the switch's code
(pyrebox.syscall_switch).

The tables are read once (again after forget(): a loadvm may bring
another kernel) through the kernel's symbols; a table whose entries stop pointing
at system-call handlers ends there (at most MAX_CALLS entries: the guest's
memory is untrusted). A number the table does not name has no name (None);
never a guess.
"""

from __future__ import annotations

import struct

from . import machine, syscall_switch

MAX_CALLS = 1024
TABLES = {False: "sys_call_table", True: "ia32_sys_call_table"}
SWITCHES = {False: "x64_sys_call", True: "ia32_sys_call"}
# Handlers' symbols, and the inner functions some share an address with (a
# call without arguments: `__do_compat_sys_sigreturn` is where 5.10's 32-bit
# table points, under that name as well as its handler's).
PREFIXES = ("__x64_sys_", "__x64_compat_sys_", "__ia32_compat_sys_", "__ia32_sys_",
            "__se_compat_sys_", "__do_compat_sys_", "__se_sys_", "__do_sys_", "sys_")
UNUSED = ("sys_ni_syscall", "__x64_sys_ni_syscall", "__ia32_sys_ni_syscall", "__do_sys_ni_syscall")

# The running kernel's tables once read: events look their names up here,
# with no symbol lookup. forget() drops them (another kernel: a loadvm).
_current: dict[bool, dict[int, str]] = {}


def forget() -> None:
    _current.clear()


def handler_name(symbol: str) -> str | None:
    """The call's name from its handler's symbol; None for an unused number
    or a symbol that is no system-call handler."""
    if symbol in UNUSED:
        return None
    for prefix in PREFIXES:
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            return symbol[len(prefix):]
    return None


def read_table(table: int, read_u64, symbol_of) -> dict[int, str]:
    """{number: name} from the table at `table`: `read_u64(va)` reads one
    entry, `symbol_of(va)` names the symbol at a handler's address (None
    when none). Ends at the first entry that is neither a handler nor an
    unused number, or at MAX_CALLS."""
    names: dict[int, str] = {}
    for number in range(MAX_CALLS):
        try:
            handler = read_u64(table + 8 * number)
        except Exception:  # noqa: BLE001 - an unreadable entry ends the table
            break
        symbol = symbol_of(handler)
        if symbol is None:
            break
        name = handler_name(symbol)
        if name is None and symbol not in UNUSED:
            break
        if name is not None:
            names[number] = name
    return names


def table(pgd: int, compat: bool = False) -> dict[int, str]:
    """{number: name} of the running kernel, read through the address space
    `pgd` (any process's: the kernel is mapped in each): the x86-64 calls,
    or with `compat` the 32-bit ones (int 0x80, sysenter). Empty when the
    kernel has neither such a table nor such a switch, or its symbols are
    not known yet."""
    known = _current.get(compat)
    if known is not None:
        return known
    address = machine.sym_to_va(0, "vmlinux", TABLES[compat])
    switch = None if address is not None else machine.sym_to_va(0, "vmlinux", SWITCHES[compat])
    if address is None and switch is None:
        return {}
    def read_u64(va: int) -> int:
        return struct.unpack("<Q", machine.r_va(pgd, va, 8))[0]

    def symbol_of(va: int) -> str | None:
        found = machine.va_to_sym(0, va)
        if found is None or found[0] != "vmlinux":
            return None
        return found[1] if machine.sym_to_va(0, "vmlinux", found[1]) == va else None

    if address is not None:
        names = read_table(address, read_u64, symbol_of)
    else:
        handlers = syscall_switch.decode(
            switch, lambda va, n: machine.r_va(pgd, va, n), symbol_of,
            lambda symbol: symbol in UNUSED or handler_name(symbol) is not None)
        names = {n: call for n, h in handlers.items() if (call := handler_name(h))}
    if names:  # nothing readable yet: asked again next time
        _current[compat] = names
    return names


def name(pgd: int, number: int, compat: bool = False) -> str | None:
    """The kernel's name of system call `number` (None when it has none)."""
    return table(pgd, compat).get(number)


def event_name(pgd: int, number: int, path: int) -> str | None:
    """A SYSCALL event's `name`: the x86-64 table for the `syscall` path
    (1), the 32-bit one otherwise. None, never an exception, when it cannot
    be told (a callback gets its event either way)."""
    known = _current.get(path != 1)  # the fast path: the table was read
    if known is not None:
        return known.get(number)
    try:
        return table(pgd, compat=path != 1).get(number)
    except Exception:  # noqa: BLE001 - the name is optional; the event is not
        return None
