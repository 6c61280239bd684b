"""An address as WinDbg writes it, module!symbol+0xoff, from the guest's
symbols (machine.va_to_sym / sym_to_va) and module list: the shell's `ln`
and the backtraces use it.

Without a symbol covering the address (static functions, PLT stubs: user
modules give their dynamic symbols only), the module's name and the
offset from its base are given (module+0xoff); outside every module, the
address alone.
"""

from __future__ import annotations

from . import machine
from .unwind.frames import location

KERNEL_BOTTOM = 0xFFFF800000000000
_FAILURES = (ValueError, RuntimeError)  # InvalidAddress, IntrospectionError


def _modules(pgd: int) -> list[dict]:
    try:
        return machine.get_module_list(pgd)
    except _FAILURES:
        return []


def describe(pgd: int, addr: int, lookup: int | None = None,
             modules: list[dict] | None = None) -> tuple[str | None, str | None, int | None]:
    """(module, symbol, offset) of `addr` in address space `pgd`. `lookup`
    is the address the symbol is looked up at (addr - 1 for a return
    address, whose call may end a function); the offset is from addr.
    `modules`: the address space's module list, when the caller has it."""
    at = addr if lookup is None else lookup
    space = 0 if at >= KERNEL_BOTTOM else pgd
    try:
        found = machine.va_to_sym(space, at)
    except _FAILURES:
        found = None
    if found and found[0] and found[1]:
        module, symbol = found
        try:
            start = machine.sym_to_va(space, module, symbol)
        except _FAILURES:
            start = None
        if start is not None and start <= at:
            return module, symbol, addr - start
        return module, symbol, None
    for m in (modules if modules is not None and space == pgd else _modules(space)):
        if m["base"] <= at < m["base"] + m["size"]:
            return m["name"], None, addr - m["base"]
    return None, None, None


def text(pgd: int, addr: int) -> str:
    """module!symbol+0xoff (module+0xoff, or the hex address) of `addr`."""
    return location(*describe(pgd, addr), addr)
