"""api.on_return: call a function once when the current call returns.

`on_return(cpu_index, func, new_style=False)` is called inside a callback
that runs at a function's first instruction (an INSN_BEGIN_CB or
BLOCK_BEGIN_CB callback there, or an execution breakpoint's function;
`api.BP(..., on_return=f)` does it for you). It reads the return address at
the stack pointer and arranges `func` for the moment execution reaches that
address with the stack pointer one word above the entry's, in the same
address space (user calls) or in the kernel (kernel calls): that call's
return in that thread. Recursion and other threads do not fire it; calls
unwound past (longjmp, exceptions) are dropped without firing. The pairing
rules are pyrebox.return_frames'.

`func` gets `cpu_index, cpu, retval` (old style) or one dict {cpu_index,
cpu, pgd, retval, return_address, sp, entry_pc} (new style): `cpu` is the
state at the return address, `retval` the whole RAX (EAX on i386) as an
unsigned int, `pgd` the address space at the return, `sp` the stack pointer
there, `entry_pc` the function's first instruction. Its exceptions are
reported as callbacks' are (each distinct one printed once); later
returns are not affected.

Each return address with a pending return has one address-specific
INSN_BEGIN callback (in the call's pgd, or any for kernel code), shared by
every call pending there and removed with the last one: nothing is
instrumented while no return is pending. Adding and removing such a
callback changes the instrumentation plan (translated code is redone), so
a hot function costs two plan changes per call whose return address has no
other pending return.

At most LIMIT returns are pending at once (the guest decides how many calls
it makes); past it on_return raises LimitReached and arranges nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading

from . import callbacks as cb
from . import return_frames
from .cpu import Cpu
from .native import pyrebox as _pyrebox
from .return_frames import KERNEL, LimitReached  # noqa: F401 - part of this API

LIMIT = return_frames.DEFAULT_LIMIT
# Callbacks that run before the instruction at their pc: at a function's
# first instruction the return address is at the stack pointer.
ENTRY_TYPES = (cb.INSN_BEGIN_CB, cb.BLOCK_BEGIN_CB)

_table = return_frames.PendingReturns(LIMIT)
# Held while the table and the site callbacks change (vCPU threads may
# interleave between Python bytecodes); never while a return function runs.
_lock = threading.Lock()
_sites: dict[tuple, str] = {}  # (space, return address) -> site callback name
_manager: cb.CallbackManager | None = None
# vCPU -> (adapter frame of the last callback execution that arranged a
# return, its serial). Holding the frame keeps it from being reused for
# another execution, so `is` tells the same execution apart from a later one.
_events: dict[int, tuple[object, int]] = {}
_serials = itertools.count(1)
_local = threading.local()  # .returning: a return function runs in this thread


@dataclasses.dataclass(frozen=True)
class _Call:
    func: object
    new_style: bool
    entry_pc: int
    cpu_index: int  # at the entry
    pgd: int        # at the entry


def on_return(cpu_index: int, func, new_style: bool = False) -> None:
    """Arranges `func` to be called once when the call whose entry the
    running callback is at returns in this thread (see the module
    documentation for the arguments and the rules). Raises TypeError for a
    `func` that is not callable, RuntimeError outside a callback or from a
    callback that does not run before an instruction, ValueError for
    another vCPU than the callback's, InvalidAddress when the return
    address cannot be read at the stack pointer, LimitReached past LIMIT
    pending returns."""
    if not callable(func):
        raise TypeError(f"on_return: func must be callable, got {type(func).__name__}")
    running = cb.running_callback()
    vcpu = _pyrebox.callback_vcpu()
    if running is None or vcpu < 0:
        raise RuntimeError(
            "on_return: no callback is running, so there is no function entry to return "
            "from; call it from an INSN_BEGIN_CB callback at the function's first "
            "instruction or from an execution breakpoint's function (api.BP(..., "
            "on_return=f) does it for you)")
    callback_type, _, frame = running
    if getattr(_local, "returning", False):
        raise RuntimeError(
            "on_return: called from a return function, which runs at a return address, "
            "not at a function's entry; arrange returns from the entry's callback")
    if callback_type not in ENTRY_TYPES:
        raise RuntimeError(
            f"on_return: the running callback is {cb.TYPE_NAMES[callback_type]}, which does "
            f"not run before an instruction; call it from an INSN_BEGIN_CB (or "
            f"BLOCK_BEGIN_CB) callback at the function's first instruction")
    if not isinstance(cpu_index, int) or isinstance(cpu_index, bool) or cpu_index != vcpu:
        raise ValueError(f"on_return: cpu_index {cpu_index!r} is not the vCPU of the running "
                         f"callback ({vcpu})")
    is_64bit = _pyrebox.is_64bit()
    word = 8 if is_64bit else 4
    sp = _pyrebox.read_register(cpu_index, "rsp" if is_64bit else "esp")
    pgd = _pyrebox.current_pgd(cpu_index)
    try:
        return_address = int.from_bytes(_pyrebox.read_virtual(pgd, sp, word), "little")
    except _pyrebox.InvalidAddress as e:
        raise _pyrebox.InvalidAddress(
            f"on_return: cannot read the return address at the stack pointer {sp:#x} "
            f"(address space {pgd:#x}): {e}") from e
    kernel = _kernel_mode(cpu_index)
    space = KERNEL if kernel else pgd
    thread = return_frames.thread_key(kernel, sp, 0 if kernel else _thread_pointer(cpu_index),
                                      is_64bit)
    entry_pc = _pyrebox.read_register(cpu_index, "rip" if is_64bit else "eip")
    call = _Call(func, bool(new_style), entry_pc, cpu_index, pgd)
    with _lock:
        out = _table.arrange(space, thread, return_address, sp, word,
                             _event_serial(cpu_index, frame), call)
        try:
            _apply(out)
        except BaseException:
            # No callback at its return address: the call must not stay pending.
            _apply(_table.discard(out.arranged))
            raise


def pending_returns() -> list[dict]:
    """The pending returns, each {cpu_index, pgd, entry_pc (at the entry),
    return_address, sp (expected after the return), kernel}, by thread,
    outermost call first."""
    with _lock:
        calls = _table.pending()
    return [{"cpu_index": c.payload.cpu_index, "pgd": c.payload.pgd,
             "entry_pc": c.payload.entry_pc, "return_address": c.return_address, "sp": c.sp,
             "kernel": c.space == KERNEL} for c in calls]


def stats() -> dict:
    """{pending, fired, dropped}: how many returns are pending, and how many
    fired or were dropped (unwound past, or forgotten) since start-up."""
    with _lock:
        return {"pending": len(_table), "fired": _table.fired, "dropped": _table.dropped}


def forget_all() -> int:
    """Drops every pending return (the machine's state was replaced, as by
    a loadvm); returns how many there were."""
    with _lock:
        out = _table.clear()
        _apply(out)
    return len(out.dropped)


# --- internals ---


def _kernel_mode(cpu_index: int) -> bool:
    return (_pyrebox.read_register(cpu_index, "cs") & 3) == 0


def _thread_pointer(cpu_index: int) -> int:
    """A user thread's own TLS pointer: FS base on x86-64, GS base on i386."""
    if _pyrebox.is_64bit():
        return _pyrebox.read_register(cpu_index, "fs_base")
    return Cpu(cpu_index).GS["base"]


def _event_serial(cpu_index: int, frame) -> int:
    last = _events.get(cpu_index)
    if last is not None and last[0] is frame:
        return last[1]
    serial = next(_serials)
    _events[cpu_index] = (frame, serial)
    return serial


def _site_manager() -> cb.CallbackManager:
    global _manager
    if _manager is None:
        _manager = cb.CallbackManager(0)
    return _manager


def _apply(out: return_frames.Outcome) -> None:
    """Places a site callback on each new site and removes those of sites
    left empty, as one plan change. Called with _lock held."""
    if not out.new_sites and not out.empty_sites:
        return
    manager = _site_manager()
    with cb.batch():
        for site in out.empty_sites:
            name = _sites.pop(site, None)
            if name is not None and manager.callback_exists(name):
                manager.rm_callback(name)
        for site in out.new_sites:
            space, address = site
            _sites[site] = manager.add_callback(
                cb.INSN_BEGIN_CB, _site_handler(space, address),
                name=f"return_{address:x}", addr=address,
                pgd=None if space == KERNEL else space)


def _site_handler(space, address: int):
    """The INSN_BEGIN callback at return address `address` of `space`."""
    kernel = space == KERNEL

    def at_return(cpu_index, cpu):
        is_64bit = _pyrebox.is_64bit()
        word = 8 if is_64bit else 4
        sp = cpu.RSP if is_64bit else cpu.ESP
        thread = return_frames.thread_key(
            kernel, sp - word, 0 if kernel else _thread_pointer(cpu_index), is_64bit)
        with _lock:
            out = _table.returned(space, thread, address, sp)
            _apply(out)
        if not out.fired:
            return
        retval = cpu.RAX if is_64bit else cpu.EAX
        pgd = _pyrebox.current_pgd(cpu_index)
        for call in out.fired:
            _deliver(call, cpu_index, cpu, pgd, retval, sp)

    at_return.__name__ = f"return_at_{address:x}"
    return at_return


def _deliver(pending: return_frames.Pending, cpu_index: int, cpu, pgd: int, retval: int,
             sp: int) -> None:
    call: _Call = pending.payload
    outer = getattr(_local, "returning", False)
    _local.returning = True
    try:
        if call.new_style:
            call.func({"cpu_index": cpu_index, "cpu": cpu, "pgd": pgd, "retval": retval,
                       "return_address": pending.return_address, "sp": sp,
                       "entry_pc": call.entry_pc})
        else:
            call.func(cpu_index, cpu, retval)
    except Exception as e:  # noqa: BLE001 - reported, never reaches QEMU
        module = getattr(call.func, "__module__", None) or "?"
        name = getattr(call.func, "__qualname__", None) or repr(call.func)
        cb.errors.report(f"module {module}", name, "on_return", e)
    finally:
        _local.returning = outer


__all__ = ["on_return", "pending_returns"]
