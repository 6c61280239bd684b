"""Pending function returns and the rules that pair a return with its call.

Pure bookkeeping, no QEMU: pyrebox.returns reads the guest and calls it.

A pending return is a call seen at its entry. At a function's first
instruction the word at the stack pointer is the return address and the
stack pointer after the `ret` is that pointer plus one word; both are kept
with

- `space`: the address space the return happens in: a user pgd, or KERNEL
  for kernel code (the kernel half and its stacks are the same in every
  address space, and a kernel thread may return under another process's
  cr3 than it called under);
- `thread`: which stack the call runs on (thread_key): the thread pointer
  of a user thread, the THREAD_SIZE-aligned stack region in the kernel;
- `event`: which callback execution arranged it (two arrangements in the
  same execution are the same call).

A return fires when execution reaches the return address in the space with
exactly the expected stack pointer: recursion returns to the same address
with a shallower stack pointer at each level, and other threads run on
other stacks, so neither fires another call's return.

Unwinding (longjmp, C++ exceptions, a thread switching back to an older
context): a call's return-address slot (sp - word) is live while the
thread's stack pointer is at or below it. Whenever the thread is seen with
its stack pointer above a pending call's slot, that call was unwound past
and is dropped; it never fires. The thread is seen
- at an entry that arranges a return (the new call's slot is the stack
  pointer: calls of that thread with a lower slot, or the same slot arranged
  by an earlier callback execution, are dropped), and
- at any pending return address it reaches (calls of that thread with an
  expected stack pointer below the current one, or equal to it but another
  return address, are dropped).
A dropped call can still be matched by the exact rule before the thread is
seen again: when the same thread reaches the same return address at the
same depth without entering a function that arranges a return, e.g. a
different function called from the same indirect call site after a
longjmp. The glue documents this.
"""

from __future__ import annotations

import dataclasses

KERNEL = "kernel"  # the space of kernel-mode calls
DEFAULT_LIMIT = 65536

# x86 Linux kernel stacks: THREAD_SIZE bytes, aligned to THREAD_SIZE (16 KiB
# on x86-64 without KASAN, 8 KiB on i386); interrupt stacks too.
KERNEL_STACK_SHIFT_64 = 14
KERNEL_STACK_SHIFT_32 = 13


class LimitReached(RuntimeError):
    """Arranging one more return would exceed the cap on pending returns."""


def thread_key(kernel: bool, slot: int, thread_pointer: int, is_64bit: bool = True):
    """The stack a call runs on: `slot` is the address of its return-address
    slot (the stack pointer at its entry, or sp - word at its return). A user
    thread is its thread pointer (FS base on x86-64, GS base on i386: each
    thread's own TLS block), whatever its stack pointer; a kernel thread is
    the aligned kernel stack region holding `slot`."""
    if kernel:
        shift = KERNEL_STACK_SHIFT_64 if is_64bit else KERNEL_STACK_SHIFT_32
        return ("stack", slot >> shift)
    return ("tls", thread_pointer)


@dataclasses.dataclass(eq=False)
class Pending:
    """One pending return. `payload` is the glue's (what to call and how)."""
    space: object
    thread: object
    return_address: int
    sp: int          # the expected stack pointer after the return
    event: object    # the callback execution that arranged it
    payload: object = None


@dataclasses.dataclass
class Outcome:
    """What a change did: the call arranged, the calls that return now (in
    arrangement order), the calls dropped as unwound, the sites (space,
    return address) that gained their first pending return and those left
    with none."""
    arranged: Pending | None = None  # arrange: the new call
    fired: list = dataclasses.field(default_factory=list)
    dropped: list = dataclasses.field(default_factory=list)
    new_sites: list = dataclasses.field(default_factory=list)
    empty_sites: list = dataclasses.field(default_factory=list)


class PendingReturns:
    """The pending returns of the whole machine, at most `limit` of them."""

    def __init__(self, limit: int = DEFAULT_LIMIT):
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        self.limit = limit
        # (space, return address) -> expected sp -> calls, in arrangement order
        self._sites: dict[tuple, dict[int, list[Pending]]] = {}
        # (space, thread) -> calls, outermost first: expected sp never
        # increases along the list (a new call is the deepest live one)
        self._threads: dict[tuple, list[Pending]] = {}
        self._count = 0
        self.fired = 0
        self.dropped = 0

    def __len__(self) -> int:
        return self._count

    def pending(self) -> list[Pending]:
        """Every pending call, by thread, outermost first."""
        return [p for calls in self._threads.values() for p in calls]

    def arrange(self, space, thread, return_address: int, sp: int, word: int, event,
                payload=None) -> Outcome:
        """A call whose entry runs now with stack pointer `sp` (its slot):
        its return is expected at `return_address` with `sp + word`. Drops
        the thread's calls unwound past first. Raises LimitReached, changing
        nothing, when `limit` calls are pending already."""
        expected = sp + word
        calls = self._threads.get((space, thread), [])
        unwound = 0
        for p in reversed(calls):
            if p.sp < expected or (p.sp == expected and p.event != event):
                unwound += 1
            else:
                break
        if self._count - unwound >= self.limit:
            raise LimitReached(
                f"{self._count} function returns are pending already, the most PyREBox "
                f"keeps (a guest can make as many calls as it likes); this one is not "
                f"arranged")
        out = Outcome()
        for _ in range(unwound):
            self._forget(calls[-1], out, out.dropped)
        call = Pending(space, thread, return_address, expected, event, payload)
        site = (space, return_address)
        if site in out.empty_sites:
            out.empty_sites.remove(site)  # lost its last call and gains this one: it stays
        elif site not in self._sites:
            out.new_sites.append(site)
        self._sites.setdefault(site, {}).setdefault(expected, []).append(call)
        self._threads.setdefault((space, thread), []).append(call)
        self._count += 1
        out.arranged = call
        return out

    def discard(self, call: Pending) -> Outcome:
        """Removes one pending call without firing it (counted as dropped)."""
        out = Outcome()
        self._forget(call, out, out.dropped)
        return out

    def returned(self, space, thread, return_address: int, sp: int) -> Outcome:
        """Execution reaches `return_address` in `space` with stack pointer
        `sp`, on `thread`'s stack: the calls expected exactly there fire (are
        removed and returned); the thread's calls unwound past are dropped."""
        out = Outcome()
        by_sp = self._sites.get((space, return_address))
        for call in list(by_sp.get(sp, ())) if by_sp else ():
            self._forget(call, out, out.fired)
        calls = self._threads.get((space, thread), [])
        while calls and (calls[-1].sp < sp or
                         (calls[-1].sp == sp and calls[-1].return_address != return_address)):
            self._forget(calls[-1], out, out.dropped)
        return out

    def clear(self) -> Outcome:
        """Drops every pending call (the machine's state was replaced)."""
        out = Outcome()
        for call in self.pending():
            self._forget(call, out, out.dropped)
        return out

    def _forget(self, call: Pending, out: Outcome, into: list) -> None:
        site = (call.space, call.return_address)
        by_sp = self._sites[site]
        same = by_sp[call.sp]
        same.remove(call)
        if not same:
            del by_sp[call.sp]
        if not by_sp:
            del self._sites[site]
            out.empty_sites.append(site)
        key = (call.space, call.thread)
        calls = self._threads[key]
        if calls and calls[-1] is call:
            calls.pop()
        else:
            calls.remove(call)
        if not calls:
            del self._threads[key]
        self._count -= 1
        into.append(call)
        if into is out.fired:
            self.fired += 1
        else:
            self.dropped += 1
