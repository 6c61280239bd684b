"""api.BP: PyREBox breakpoints.

A breakpoint is a callback PyREBox manages for you:

- EXECUTION at one address (size 0 or 1): an address-specific INSN_BEGIN
  callback, in address space `pgd` (None: any);
- EXECUTION over [addr, addr+size), MEM_READ / MEM_WRITE over virtual
  [addr, addr+max(size, 1)) of `pgd` (None: any), MEM_READ_PHYS /
  MEM_WRITE_PHYS over physical memory: a callback with a native range
  trigger in front (triggers/trigger_bp*_memrange*), so only events in the
  range reach Python. A memory access counts when its first byte is in the
  range.

`func` is called with the arguments of the callback type (INSN_BEGIN_CB for
execution: `cpu_index, cpu`; MEM_READ_CB: `cpu_index, vaddr, size, haddr`;
MEM_WRITE_CB: `..., data`), or one dict of them with `new_style=True`.
Without `func` a hit opens the interactive shell at that point
(`ipython_shell.start_shell`, i.e. pyrebox.interactive.start_shell, which
the runtime installs with set_shell_opener). `addr` may be "module!symbol" (resolved with
api.symbol_lookup in `pgd`; pgd None: 0, where kernel modules resolve). A
module that is not mapped yet, or whose symbols cannot be read yet, makes
the breakpoint pending (pending_breakpoints.py; so does a breakpoint made
before the kernel is located, by a script loaded at boot): enabled, it arms itself
as soon as the symbol resolves (`pending()` says why it waits; `get_addr()`
is None meanwhile); a symbol the module does not have is a ValueError.
`children=True` (a user module's "module!symbol"): the processes created
from the breakpoint's process, and theirs, get a breakpoint of their own
when they map the module (following_breakpoints.py; `children()`).

`on_return=f` (an EXECUTION breakpoint at one address, placed at a
function's first instruction): each hit arranges `f` for that call's return
(pyrebox.returns.on_return, in the breakpoint's style: `cpu_index, cpu,
retval` or a dict), before `func` runs; without `func` such a hit only
arranges the return (it opens no shell).

Range and memory breakpoints see every process (their trigger checks the
pgd); they do not change the monitored set.

A breakpoint starts disabled: `enable()` places it, `disable()` removes it.
`BP.list()` gives every breakpoint made in this session, each with an `id`.
"""

from __future__ import annotations

import itertools
import os

from . import callbacks as cb
from . import following_breakpoints, output, paths, pending_breakpoints, returns
from .native import pyrebox as _pyrebox

TRIGGERS = os.path.join(paths.ROOT, "triggers")


class BP:
    EXECUTION = 0
    MEM_READ = 1
    MEM_WRITE = 2
    MEM_READ_PHYS = 3
    MEM_WRITE_PHYS = 4

    TYPE_NAMES = {EXECUTION: "EXECUTION", MEM_READ: "MEM_READ", MEM_WRITE: "MEM_WRITE",
                  MEM_READ_PHYS: "MEM_READ_PHYS", MEM_WRITE_PHYS: "MEM_WRITE_PHYS"}
    # Callback type and range trigger of each kind.
    _KINDS = {
        EXECUTION: (cb.INSN_BEGIN_CB, "trigger_bp_memrange"),
        MEM_READ: (cb.MEM_READ_CB, "trigger_bpr_memrange"),
        MEM_WRITE: (cb.MEM_WRITE_CB, "trigger_bpw_memrange"),
        MEM_READ_PHYS: (cb.MEM_READ_CB, "trigger_bpr_memrange_phys"),
        MEM_WRITE_PHYS: (cb.MEM_WRITE_CB, "trigger_bpw_memrange_phys"),
    }

    _all: dict[int, "BP"] = {}
    _ids = itertools.count(1)
    _managers: dict[bool, cb.CallbackManager] = {}

    def __init__(self, addr, pgd, size=0, typ=EXECUTION, func=None, new_style=False,
                 on_return=None, children=False):
        if typ not in self.TYPE_NAMES:
            raise ValueError(f"unknown breakpoint type {typ!r}; use BP.EXECUTION, BP.MEM_READ, "
                             f"BP.MEM_WRITE, BP.MEM_READ_PHYS or BP.MEM_WRITE_PHYS")
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        if pgd is not None and (not isinstance(pgd, int) or pgd < 0):
            raise ValueError(f"pgd must be a non-negative int or None, got {pgd!r}")
        if func is not None and not callable(func):
            raise TypeError(f"func must be callable or None, got {type(func).__name__}")
        if on_return is not None:
            if not callable(on_return):
                raise TypeError(f"on_return must be callable or None, got "
                                f"{type(on_return).__name__}")
            if typ != self.EXECUTION or size > 1:
                raise ValueError("on_return needs an EXECUTION breakpoint at one address "
                                 "(size 0 or 1): a function's first instruction")
        self._typ = typ
        self._pgd = None if typ in (self.MEM_READ_PHYS, self.MEM_WRITE_PHYS) else pgd
        self._symbol = None    # (module, symbol) of a "module!symbol" address
        self._pending = None   # why its address is not known yet
        self._waiting = False  # enabled while pending
        self._hits = 0
        self._addr = self._resolve(addr, self._pgd)
        self._size = size
        self._func = func
        self._on_return = on_return
        self._new_style = bool(new_style)
        self._name = None
        self._follow = bool(children)
        self._parent = None      # the id of the breakpoint that made this one (children)
        self._kept_children = []  # children while the breakpoint is disabled
        if self._follow and (self._symbol is None or self._pgd == 0
                             or typ in (self.MEM_READ_PHYS, self.MEM_WRITE_PHYS)):
            raise ValueError("children=True needs a user module's 'module!symbol' breakpoint "
                             "(not physical, not pgd 0): child processes map their own copy "
                             "of the module")
        self.id = next(self._ids)
        BP._all[self.id] = self

    def _resolve(self, addr, pgd):
        """The address, or None for a pending "module!symbol"."""
        if isinstance(addr, int):
            if addr < 0:
                raise ValueError(f"address must be non-negative, got {addr:#x}")
            return addr
        if isinstance(addr, str) and "!" in addr:
            module, _, symbol = addr.partition("!")
            if not module or not symbol:
                raise ValueError(f"address must be 'module!symbol', got {addr!r}")
            from . import machine
            self._symbol = (module, symbol)
            space = pgd if pgd is not None else 0
            try:
                va, why = machine.symbol_lookup(space, module, symbol)
            except machine.IntrospectionError as error:
                if not machine.introspection_pending():
                    raise
                va, why = None, "kernel not located yet"  # a script loaded at boot: wait
            if va is not None:
                return va
            if why == "unknown symbol":
                raise ValueError(f"cannot resolve {addr!r}: module {module!r} has no symbol "
                                 f"{symbol!r} (address space {space:#x})")
            if why == "unknown process":
                raise ValueError(f"cannot resolve {addr!r}: no process has address space "
                                 f"{space:#x}")
            self._pending = why  # "unknown module" or "not readable yet": wait for it
            return None
        raise ValueError(f"address must be an int or 'module!symbol', got {addr!r}")

    # --- PyREBox's interface ---

    def enable(self) -> None:
        if self._name is not None or self._waiting:
            return
        if self._follow:
            following_breakpoints.follow(self)
            kept, self._kept_children = self._kept_children, []
            following_breakpoints.resume(self, kept)
        if self._addr is None:
            self._waiting = True
            pending_breakpoints.watch(self)
            return
        callback_type, trigger = self._KINDS[self._typ]
        manager = self._manager(self._new_style)
        handler = self._func if self._func is not None else self._open_shell
        if self._on_return is not None:
            handler = self._returning_handler()
        handler = self._counting(handler)
        name = f"bp_{self.id}"
        single = self._typ == self.EXECUTION and self._size <= 1
        if single:
            self._name = manager.add_callback(callback_type, handler, name=name, addr=self._addr,
                                              pgd=self._pgd)
            return
        self._name = manager.add_callback(callback_type, handler, name=name)
        try:
            manager.add_trigger(self._name, os.path.join(TRIGGERS, trigger))
            end = self._addr + max(self._size, 1)
            manager.set_trigger_var(self._name, "begin", self._addr)
            manager.set_trigger_var(self._name, "end", end)
            if self._typ in (self.EXECUTION, self.MEM_READ, self.MEM_WRITE):
                word = 64 if _pyrebox.is_64bit() else 32
                manager.set_trigger_var(self._name, "pgd", self._pgd if self._pgd is not None
                                        else (1 << word) - 1)
        except Exception:
            manager.rm_callback(self._name)
            self._name = None
            raise

    def disable(self) -> None:
        if self._follow and self.enabled():
            self._kept_children = following_breakpoints.children(self)
            following_breakpoints.unfollow(self, remove_children=False)
        if self._waiting:
            self._waiting = False
            pending_breakpoints.unwatch(self)
        if self._name is not None:
            self._manager(self._new_style).rm_callback(self._name)
            self._name = None

    def enabled(self) -> bool:
        return self._name is not None or self._waiting

    def get_addr(self):
        """The address; None while the breakpoint is pending."""
        return self._addr

    def get_symbol(self):
        """(module, symbol) of a breakpoint made from "module!symbol", else None."""
        return self._symbol

    def pending(self):
        """Why the breakpoint has no address yet ("unknown module": not mapped
        yet; "not readable yet"), or None once it has one."""
        return self._pending if self._addr is None else None

    def get_pgd(self):
        return self._pgd

    def get_size(self) -> int:
        return self._size

    def get_type(self) -> int:
        return self._typ

    def _arm(self, pgd: int, address: int) -> None:
        """The pending symbol resolved at `address` in address space `pgd`
        (pending_breakpoints): placed there (a user module's breakpoint of pgd
        None in that process; a kernel module's everywhere)."""
        self._addr = address
        self._pending = None
        if self._pgd is None and pgd != 0:
            self._pgd = pgd
            if self._follow:
                following_breakpoints.rooted(self, pgd)
        if self._waiting:
            self._waiting = False
            self.enable()

    def _still_pending(self, why: str) -> None:
        self._pending = why

    def remove(self) -> None:
        """Disables the breakpoint and forgets it (BP.list() no longer has it),
        with its children."""
        if self._follow:
            following_breakpoints.unfollow(self, remove_children=True)
            for child in self._kept_children:
                child.remove()
            self._kept_children = []
        self.disable()
        BP._all.pop(self.id, None)

    def children(self) -> list["BP"]:
        """The breakpoints made for this one's descendant processes
        (children=True; following_breakpoints), alive now."""
        return following_breakpoints.children(self) if self.enabled() \
            else list(self._kept_children)

    def parent(self):
        """The id of the breakpoint that made this one for a descendant
        process, or None."""
        return self._parent

    def _child(self, pgd: int) -> "BP":
        """A breakpoint like this one in the address space `pgd` of a
        followed process (following_breakpoints), enabled."""
        module, symbol = self._symbol
        child = BP(f"{module}!{symbol}", pgd, self._size, self._typ, self._func,
                   self._new_style, self._on_return)
        child._parent = self.id
        child.enable()
        return child

    def __str__(self) -> str:
        if self._addr is None:
            span = f"{self._symbol[0]}!{self._symbol[1]} (pending: {self._pending})"
        else:
            span = (f"{self._addr:#x}" if self._size <= 1
                    else f"{self._addr:#x}-{self._addr + self._size:#x}")
        where = "physical" if self._typ in (self.MEM_READ_PHYS, self.MEM_WRITE_PHYS) else (
            "any process" if self._pgd is None else f"pgd {self._pgd:#x}")
        if self._follow:
            where += " and its children"
        if self._parent is not None:
            where += f", child of [{self._parent}]"
        state = "enabled" if self.enabled() else "disabled"
        action = "shell" if self._func is None else getattr(self._func, "__name__", "func")
        if self._on_return is not None:
            returned = f"on_return {getattr(self._on_return, '__name__', 'func')}"
            action = returned if self._func is None else f"{action}, {returned}"
        return (f"[{self.id}] {self.TYPE_NAMES[self._typ]} {span} ({where}) {state} "
                f"-> {action}")

    __repr__ = __str__

    @classmethod
    def list(cls) -> list["BP"]:
        return list(cls._all.values())

    @classmethod
    def get(cls, bp_id: int) -> "BP":
        if bp_id not in cls._all:
            raise ValueError(f"no breakpoint {bp_id} (have: "
                             f"{', '.join(str(i) for i in cls._all) or 'none'})")
        return cls._all[bp_id]

    # --- internals ---

    @classmethod
    def _manager(cls, new_style: bool) -> cb.CallbackManager:
        if new_style not in cls._managers:
            cls._managers[new_style] = cb.CallbackManager(0, new_style=new_style)
        return cls._managers[new_style]

    def _hit_text(self, args) -> tuple[int, str]:
        """(cpu_index, what happened) for a hit with the callback's arguments."""
        if self._new_style:
            d = args[0]
        else:
            names = ("cpu_index", "cpu") if self._typ == self.EXECUTION else \
                ("cpu_index", "vaddr", "size", "haddr", "data")
            d = dict(zip(names, args))
        cpu_index = d["cpu_index"]
        if self._typ == self.EXECUTION:
            cpu = d.get("cpu")
            pc = getattr(cpu, "PC", None)
            return cpu_index, ("execution" + (f" at {pc:#x}" if isinstance(pc, int) else ""))
        size = d.get("size", 0)
        where = f"{d.get('vaddr', 0):#x} (physical {d.get('haddr', 0):#x})"
        if self._typ in (self.MEM_READ, self.MEM_READ_PHYS):
            return cpu_index, f"read of {size} byte(s) at {where}"
        data = d.get("data")
        value = f", value {data:#0{2 + 2 * size}x}" if isinstance(data, int) else ""
        return cpu_index, f"write of {size} byte(s) at {where}{value}"

    def _counting(self, handler):
        """`handler`, counting the hits (`hits()`, the shell's `bl`)."""
        def hit(*args):
            self._hits += 1
            return handler(*args)

        hit.__name__ = getattr(handler, "__name__", f"bp_{self.id}")
        return hit

    def hits(self) -> int:
        """How many times the breakpoint fired."""
        return self._hits

    def _returning_handler(self):
        """The hit function of a breakpoint with on_return: arranges the
        return, then runs `func` (also when arranging raised, whose error
        is raised after it)."""
        on_return, func, new_style = self._on_return, self._func, self._new_style

        def hit(*args):
            cpu_index = args[0]["cpu_index"] if new_style else args[0]
            try:
                returns.on_return(cpu_index, on_return, new_style=new_style)
            finally:
                if func is not None:
                    func(*args)

        hit.__name__ = f"bp_{self.id}_with_on_return"
        return hit

    def _open_shell(self, *args) -> None:
        """A hit without `func`: the shell, whose banner names the breakpoint."""
        cpu_index, what = self._hit_text(args)
        if _shell_opener is None:
            output.error(f"breakpoint {self.id} hit on vCPU {cpu_index}: {what}; it has no "
                         f"function and the shell cannot open: no shell is available here")
            return
        _shell_opener(cpu_index, reason=f"breakpoint {self.id}: {what}")


# What a breakpoint without a function calls on a hit: start_shell(cpu_index,
# reason=...); the runtime installs pyrebox.interactive.start_shell.
_shell_opener = None


def set_shell_opener(opener) -> None:
    global _shell_opener
    _shell_opener = opener
