"""A kernel's system-call numbering read from its dispatch switch.

Since the branch-history-injection fixes (6.9, and stable kernels that took
them, such as Debian's 6.1), the kernel dispatches calls through a switch:
`ia32_sys_call(regs, nr)` / `x64_sys_call(regs, nr)`, `case N: return
__ia32_sys_getpid(regs);`, and keeps no `ia32_sys_call_table`. Built without
jump tables (retpolines), the switch is a tree of `cmp esi, N` and
conditional jumps ending in tail calls (`jmp __ia32_sys_getpid`). This module
walks that tree over the function's machine code (disassembled with
capstone), keeping for each path the range of numbers that reach it, and
takes a tail call reached by exactly one number as that number's handler.

The code is read from guest memory, which is untrusted: at most MAX_STEPS
instructions are decoded over all paths, each (address, range) is visited
once, and anything the walk does not understand (another register compared,
an indirect jump, a call) ends that path without a guess.
"""

from __future__ import annotations

import capstone

MAX_STEPS = 200_000
MAX_NUMBER = 0xffff  # numbers above reach the default case on every kernel
CHUNK = 64
NUMBER_REGISTER = "esi"  # the switch's `nr` (second argument)

# Conditional jumps: (range taken, range not taken) for `cmp reg, imm`.
def _split(mnemonic: str, lo: int, hi: int, imm: int):
    below = (lo, min(hi, imm - 1))
    at_or_below = (lo, min(hi, imm))
    above = (max(lo, imm + 1), hi)
    at_or_above = (max(lo, imm), hi)
    return {
        "ja": (above, at_or_below), "jg": (above, at_or_below),
        "jae": (at_or_above, below), "jge": (at_or_above, below),
        "jb": (below, at_or_above), "jl": (below, at_or_above),
        "jbe": (at_or_below, above), "jle": (at_or_below, above),
    }.get(mnemonic)


def decode(entry: int, read, symbol_of, is_handler) -> dict[int, str]:
    """{number: handler symbol} of the switch function at `entry`:
    `read(va, n)` reads code, `symbol_of(va)` names the symbol starting at
    `va` (or None), `is_handler(name)` says whether a tail call to it is a
    case (a handler or the unused-number handler)."""
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.skipdata = False
    cache: dict[int, bytes] = {}

    def code_at(va: int) -> bytes:
        if va not in cache:
            cache[va] = read(va, CHUNK)
        return cache[va]

    found: dict[int, str] = {}
    seen: set[tuple[int, int, int, frozenset]] = set()
    # (address, lo, hi, numbers excluded by earlier je/jne, the number the
    # last cmp compared with, what earlier `sub esi, k` took from the number)
    work = [(entry, 0, MAX_NUMBER, frozenset(), None, 0)]
    steps = 0
    while work and steps < MAX_STEPS:
        pc, lo, hi, excluded, imm, offset = work.pop()
        while steps < MAX_STEPS:
            if lo > hi:
                break
            key = (pc, lo, hi, excluded)
            if key in seen:
                break
            seen.add(key)
            steps += 1
            try:
                insn = next(md.disasm(code_at(pc), pc, 1))
            except (StopIteration, Exception):  # noqa: BLE001 - unreadable or undecodable: path ends
                break
            m, ops = insn.mnemonic, insn.op_str
            nxt = pc + insn.size
            if m in ("cmp", "sub") or (m == "test" and ops == f"{NUMBER_REGISTER}, {NUMBER_REGISTER}"):
                reg, _, value = ops.partition(", ")
                if reg != NUMBER_REGISTER:
                    break
                try:
                    value = 0 if m == "test" else int(value, 0)  # test esi, esi: compared with 0
                except ValueError:
                    break
                # `sub esi, k` sets the flags as `cmp esi, k` does, then the
                # register holds the number minus k: later compares are offset.
                imm = value + offset
                if m == "sub":
                    offset += value
                pc = nxt
                continue
            if m in ("je", "jne") and imm is not None:
                target = _target(ops)
                if target is None:
                    break
                equal = (imm, imm, frozenset()) if lo <= imm <= hi and imm not in excluded else None
                other = (lo, hi, excluded | {imm})
                taken, fall = (equal, other) if m == "je" else (other, equal)
                if taken is not None:
                    work.append((target, *taken, imm, offset))
                if fall is None:
                    break
                lo, hi, excluded = fall
                pc = nxt
                continue
            split = _split(m, lo, hi, imm) if imm is not None else None
            if split is not None:
                target = _target(ops)
                if target is None:
                    break
                (tlo, thi), (flo, fhi) = split
                work.append((target, tlo, thi, excluded, imm, offset))
                lo, hi, pc = flo, fhi, nxt
                continue
            if m == "jmp":
                target = _target(ops)
                if target is None:
                    break
                name = symbol_of(target)
                if name is not None and is_handler(name):
                    _record(found, lo, hi, excluded, name)
                    break
                pc = target
                continue
            if m == "call":
                target = _target(ops)
                name = symbol_of(target) if target is not None else None
                if name == "__fentry__":
                    pc = nxt  # the tracing hook, on the way in
                    continue
                if name is not None and is_handler(name):
                    _record(found, lo, hi, excluded, name)  # a handler that does not return
                break
            if m == "test":
                break  # a test of something else: not a case of the switch
            if m in ("nop", "endbr64", "push", "pop", "mov") or m.startswith("cmov"):
                if ops.split(",")[0].strip() in ("esi", "rsi", "si", "sil"):
                    break  # the number is overwritten: not a switch on it any more
                pc = nxt
                continue
            break  # ret, int3, indirect jumps, anything else: no case here
    return found


def _record(found: dict, lo: int, hi: int, excluded: frozenset, name: str) -> None:
    """A case reached by exactly one number is that number's handler."""
    numbers = [n for n in range(lo, hi + 1) if n not in excluded] if hi - lo < 16 else []
    if len(numbers) == 1:
        found.setdefault(numbers[0], name)


def _target(op_str: str) -> int | None:
    try:
        return int(op_str, 16)
    except ValueError:
        return None
