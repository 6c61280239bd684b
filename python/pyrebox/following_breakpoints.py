"""Breakpoints that follow a process's descendants: BP("module!symbol",
pgd, ..., children=True) (gdb's follow-fork with detach-on-fork off).

Once the breakpoint has an address space (its pgd, or, for a pending one of
pgd None, the process it arms in), its process and every process created
from it or from its descendants (fork, clone of a new process; exec keeps
the pid) are followed. When a followed process maps the module (its own
LOADMODULE, which a fork child gets for each file it inherits) in an
address space that has no breakpoint of the family yet, a child
breakpoint is made there: same symbol, type, size, function, style and
on_return, resolved at once (the page cache) or pending until it can be.
A followed process's exit, or its exec, removes the child breakpoint of
the address space it leaves (the pgd may be reused by an unrelated
process).

Children are ordinary BPs (BP.list() has them, each with its id);
`bp.children()` lists the live ones. Disabling the parent disables them and
stops following; enabling it again follows again; removing it removes them.

Nothing runs while no breakpoint follows: CREATEPROC, REMOVEPROC and
LOADMODULE callbacks exist only while one does. A CREATEPROC costs one
process-list read then (for the new process's parent).
"""

from __future__ import annotations

from . import callbacks as cb
from . import machine

_following: dict[int, "_Family"] = {}   # parent breakpoint id -> its family
_manager = None
_names: list[str] = []


class _Family:
    def __init__(self, bp):
        self.bp = bp
        self.pids: set[int] = set()
        self.children: dict[int, object] = {}   # pgd -> child BP
        self.owners: dict[int, int] = {}        # pgd of a child BP -> its process's pid
        self.spaces: set[int] = set()           # pgds that have a breakpoint of the family


def _callbacks() -> cb.CallbackManager:
    global _manager
    if _manager is None:
        _manager = cb.CallbackManager(0, new_style=True)
    return _manager


def follow(bp) -> None:
    """Starts following for `bp` (enabled, children=True). Its root is
    found now when it has a pgd, else when it arms (rooted())."""
    _following.setdefault(bp.id, _Family(bp))
    if bp.get_pgd():
        rooted(bp, bp.get_pgd())
    if not _names:
        manager = _callbacks()
        _names.append(manager.add_callback(cb.CREATEPROC_CB, _on_create,
                                           name="following_breakpoints_create"))
        _names.append(manager.add_callback(cb.REMOVEPROC_CB, _on_remove,
                                           name="following_breakpoints_remove"))
        _names.append(manager.add_callback(cb.LOADMODULE_CB, _on_load,
                                           name="following_breakpoints_load"))


def rooted(bp, pgd: int) -> None:
    """`bp` has its address space `pgd`: its process is the family's root."""
    family = _following.get(bp.id)
    if family is None or pgd == 0:
        return
    family.spaces.add(pgd)
    try:
        processes = machine.get_process_list()
    except RuntimeError:
        return
    family.pids.update(p["pid"] for p in processes if p["pgd"] == pgd)


def unfollow(bp, remove_children: bool) -> None:
    """Stops following for `bp`; its children are disabled (or removed)."""
    family = _following.pop(bp.id, None)
    if family is not None:
        for child in family.children.values():
            child.remove() if remove_children else child.disable()
        if remove_children:
            family.children.clear()
    if not _following and _names:
        manager = _callbacks()
        for name in _names:
            manager.rm_callback(name)
        _names.clear()


def children(bp) -> list:
    family = _following.get(bp.id)
    return list(family.children.values()) if family is not None else []


def resume(bp, old_children: list) -> None:
    """`bp` enabled again (follow() done): its children whose address space
    still belongs to a process are enabled and followed again; the others
    are removed."""
    family = _following.get(bp.id)
    if family is None:
        return
    try:
        processes = machine.get_process_list()
    except RuntimeError:
        processes = []
    for child in old_children:
        pgd = child.get_pgd()
        pids = {p["pid"] for p in processes if p["pgd"] == pgd}
        if not pids:
            child.remove()
            continue
        family.children[pgd] = child
        family.owners[pgd] = min(pids)
        family.spaces.add(pgd)
        family.pids |= pids
        child.enable()


def _on_create(params) -> None:
    wanted = [f for f in _following.values() if f.pids]
    if not wanted:
        return
    pid, pgd = params["pid"], params["pgd"]
    for family in wanted:  # an exec: the process's old address space is gone
        for old in [s for s, owner in family.owners.items() if owner == pid and s != pgd]:
            _drop(family, old)
    if all(pid in f.pids for f in wanted):
        return  # an exec of a followed process: same pid
    try:
        ppid = next((p["ppid"] for p in machine.get_process_list() if p["pid"] == pid), None)
    except RuntimeError:
        return
    for family in wanted:
        if ppid in family.pids:
            family.pids.add(pid)


def _on_remove(params) -> None:
    for family in list(_following.values()):
        family.pids.discard(params["pid"])
        _drop(family, params["pgd"])


def _drop(family: _Family, pgd: int) -> None:
    family.spaces.discard(pgd)
    family.owners.pop(pgd, None)
    child = family.children.pop(pgd, None)
    if child is not None:
        child.remove()


def _on_load(params) -> None:
    for family in list(_following.values()):
        bp = family.bp
        module, symbol = bp.get_symbol()
        pgd = params["pgd"]
        if params["pid"] not in family.pids or pgd in family.spaces or pgd == 0:
            continue
        if module not in (params["name"], params["fullname"]):
            continue
        family.spaces.add(pgd)
        family.owners[pgd] = params["pid"]
        family.children[pgd] = bp._child(pgd)
