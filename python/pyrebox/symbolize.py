"""An address as WinDbg writes it, module!symbol+0xoff, from the guest's
symbols (machine.va_to_sym / sym_to_va) and module list.

describe() (the backtraces): without a symbol covering the address (static
functions, PLT stubs: user modules give their dynamic symbols only), the
module's name and the offset from its base are given (module+0xoff);
outside every module, the address alone.

Symbolizer (backtraces, the shell's k, ln, dis and bl): where no symbol
covers the address, the nearest preceding symbol of the module holding it
names it, as WinDbg's `ln` does; a module's full symbol table from a host
file with its build ID (pyrebox.symbol_files) joins its dynamic symbols.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from . import machine, symbol_files
from .unwind.frames import location

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
    space = 0 if at >= machine.KERNEL_BOTTOM else pgd
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


# --- nearest preceding symbol (the shell's ln, dis, bl) ---


class Nearest(NamedTuple):
    """An address named by a symbol: size is None when the symbol list
    does not give one."""
    module: str | None
    symbol: str | None
    offset: int | None
    size: int | None


class Symbolizer:
    """Names addresses by the nearest preceding symbol of the module that
    holds them (WinDbg's `ln`), where describe() names only addresses a
    symbol covers. User modules give their dynamic symbols with
    va_to_sym's [value, value+size) only, so an address in a function the
    lookup misses (size 0, or a static function after an exported one) is
    found here from get_symbol_list, filtered to that module, with the
    module's .symtab when the symbol path has a file of its build ID.

    One instance lives as long as the shell session it serves (the VM is
    frozen meanwhile): module lists and each module's sorted symbols are
    cached per address space, so repeated lookups cost a bisection."""

    def __init__(self, modules: dict[int, list[dict]] | None = None):
        """`modules`: module lists the caller has already read, by space."""
        self._modules: dict[int, list[dict]] = dict(modules or {})
        self._lists: dict[int, list[dict]] = {}
        self._sorted: dict[tuple[int, str, int], tuple[list[int], list[dict]]] = {}

    def modules(self, space: int) -> list[dict]:
        if space not in self._modules:
            self._modules[space] = _modules(space)
        return self._modules[space]

    def symbols(self, space: int) -> list[dict]:
        """get_symbol_list(space), read once per session; a failure
        (introspection off, no such process) is raised and not kept."""
        if space not in self._lists:
            self._lists[space] = machine.get_symbol_list(space)
        return self._lists[space]

    def module_at(self, pgd: int, addr: int) -> tuple[int, dict | None]:
        """(address space, module holding addr in it, or None)."""
        space = 0 if addr >= machine.KERNEL_BOTTOM else pgd
        for m in self.modules(space):
            if m["base"] <= addr < m["base"] + m["size"]:
                return space, m
        return space, None

    def _module_symbols(self, space: int, module: dict) -> tuple[list[int], list[dict]]:
        """The module's symbols sorted by address, and their addresses."""
        key = (space, module.get("fullname") or module["name"], module["base"])
        if key not in self._sorted:
            full = module.get("fullname")
            try:
                listed = self.symbols(space)
            except _FAILURES:
                listed = []
            mine = [s for s in listed
                    if (s.get("mod_fullname") == full if full and s.get("mod_fullname")
                        else s["mod"] == module["name"])]
            if space != 0:
                mine += self._host_symbols(space, module)
            mine.sort(key=lambda s: s["addr"])
            self._sorted[key] = ([s["addr"] for s in mine], mine)
        return self._sorted[key]

    def _host_symbols(self, space: int, module: dict) -> list[dict]:
        """The module's symbols from a host file of its build ID (none
        without one), as symbol-list entries at their runtime addresses."""
        base = module["base"]
        ident = symbol_files.build_id(lambda a, n: machine.r_va(space, a, n), base)
        table = symbol_files.find(ident) if ident else None
        if table is None:
            return []
        end = base + module["size"]
        return [{"mod": module["name"], "mod_fullname": module.get("fullname"), "name": name,
                 "addr": addr, "size": size}
                for addr, size, name in table.rebased(base) if base <= addr < end]

    def nearest(self, pgd: int, addr: int, lookup: int | None = None) -> Nearest:
        """The symbol covering `addr` (describe's), else the nearest one
        before it in the module holding it; module+offset without either.
        `lookup`: the address looked up, when it is not `addr` (addr - 1
        for a return address, whose call may end a function); the offset
        is from addr."""
        at = addr if lookup is None else lookup
        space, module = self.module_at(pgd, at)
        name, symbol, offset = describe(pgd, addr, at, modules=self.modules(space)
                                        if space == pgd else None)
        if symbol is not None or module is None:
            size = self._size(space, module, symbol, addr - offset) \
                if symbol is not None and module is not None and offset is not None else None
            return Nearest(name, symbol, offset, size)
        addrs, syms = self._module_symbols(space, module)
        i = bisect.bisect_right(addrs, at) - 1
        if i >= 0 and addrs[i] >= module["base"]:
            s = syms[i]
            return Nearest(module["name"], s["name"], addr - s["addr"], s.get("size"))
        return Nearest(name, symbol, offset, None)

    def _size(self, space: int, module: dict, symbol: str, start: int) -> int | None:
        """The size the symbol list gives for `symbol` at `start` (None:
        the list has no sizes). Kernel lists are not read for this: they
        give no size and hold ~90,000 symbols."""
        if space == 0:
            return None
        addrs, syms = self._module_symbols(space, module)
        i = bisect.bisect_left(addrs, start)
        while i < len(addrs) and addrs[i] == start:
            if syms[i]["name"] == symbol:
                return syms[i].get("size")
            i += 1
        return None

    def text(self, pgd: int, addr: int) -> str:
        """module!symbol+0xoff of the nearest preceding symbol (module+0xoff,
        or the hex address, without one)."""
        n = self.nearest(pgd, addr)
        return location(n.module, n.symbol, n.offset, addr)
