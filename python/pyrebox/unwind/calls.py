"""Whether an address is a plausible return address: the bytes just before
it decode (capstone, x86-64) as one call instruction ending exactly there.
Direct calls are 5 bytes; indirect ones 2 to 7 (with a REX prefix and a
32-bit displacement)."""

from __future__ import annotations

import functools

from .memory import Memory, UnwindError

_LENGTHS = (5, 2, 3, 6, 7, 4)


@functools.lru_cache(maxsize=1)
def _disassembler():
    import capstone
    return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)


def after_call(memory: Memory, addr: int) -> bool:
    if addr < 8:
        return False
    try:
        before = memory.read(addr - 7, 7)
    except UnwindError:
        # The call may be at the very start of a readable page.
        try:
            before = b"\x00\x00" + memory.read(addr - 5, 5)
        except UnwindError:
            return False
    md = _disassembler()
    for length in _LENGTHS:
        code = before[7 - length:]
        insn = next(md.disasm(code, addr - length, 1), None)
        if insn is not None and insn.size == length and insn.mnemonic == "call":
            return True
    return False
