"""Pending breakpoints (as gdb's): a BP made from "module!symbol" while no
module of that name is mapped, or while its symbols cannot be read yet,
waits, and arms itself as soon as they resolve:

- when a module of that name (its basename or full path) loads in the
  breakpoint's address space (any address space for pgd None: the first
  that maps it; pgd 0 or None for a kernel module), at its LOADMODULE;
- while the module is mapped but its symbols are in neither the process's
  memory nor the kernel's page cache, at each system call of that process
  (the dynamic loader's own calls come after it read the library).

Nothing runs while no breakpoint waits: the LOADMODULE callback is added
with the first waiting breakpoint and removed with the last, a process's
system-call callback only while one of its breakpoints is not readable.
"""

from __future__ import annotations

from . import callbacks as cb
from . import machine

_waiting: dict[int, object] = {}   # breakpoint id -> BP
_manager = None
_load_callback = None
_syscall_callbacks: dict[int, str] = {}  # pgd -> callback name


def _callbacks() -> cb.CallbackManager:
    global _manager
    if _manager is None:
        _manager = cb.CallbackManager(0, new_style=True)
    return _manager


def watch(bp) -> None:
    """Makes `bp` (a BP with get_symbol() and no address yet) wait."""
    global _load_callback
    _waiting[bp.id] = bp
    if _load_callback is None:
        _load_callback = _callbacks().add_callback(cb.LOADMODULE_CB, _on_load,
                                                   name="pending_breakpoints_load")
    pgd = bp.get_pgd()
    if pgd and bp.pending() == "not readable yet":
        _retry_at_syscalls(pgd)


def unwatch(bp) -> None:
    global _load_callback
    _waiting.pop(bp.id, None)
    _prune_syscall_callbacks()
    if not _waiting and _load_callback is not None:
        _callbacks().rm_callback(_load_callback)
        _load_callback = None


def _matches(module: str, params) -> bool:
    return module in (params["name"], params["fullname"])


def _on_load(params) -> None:
    for bp in list(_waiting.values()):
        module, _ = bp.get_symbol()
        pgd = bp.get_pgd()
        if _matches(module, params) and (pgd is None or pgd == params["pgd"]):
            _try(bp, params["pgd"])


def _on_syscall(params) -> None:
    for bp in list(_waiting.values()):
        if bp.get_pgd() == params["pgd"]:
            _try(bp, params["pgd"])


def _try(bp, pgd: int) -> None:
    module, symbol = bp.get_symbol()
    address, why = machine.symbol_lookup(pgd, module, symbol)
    if address is not None:
        unwatch(bp)
        bp._arm(pgd, address)
        return
    bp._still_pending(why)
    if why == "not readable yet" and pgd:
        _retry_at_syscalls(pgd)


def _retry_at_syscalls(pgd: int) -> None:
    if pgd not in _syscall_callbacks:
        _syscall_callbacks[pgd] = _callbacks().add_callback(
            cb.SYSCALL_CB, _on_syscall, name=f"pending_breakpoints_syscall_{pgd:#x}", pgd=pgd)


def _prune_syscall_callbacks() -> None:
    wanted = {bp.get_pgd() for bp in _waiting.values() if bp.pending() == "not readable yet"}
    for pgd in [p for p in _syscall_callbacks if p not in wanted]:
        _callbacks().rm_callback(_syscall_callbacks.pop(pgd))
