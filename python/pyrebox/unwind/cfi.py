"""DWARF call-frame information (.eh_frame) of one pc, parsed with
pyelftools, and the caller's registers it gives.

Registers are numbered as DWARF does for x86-64 (RBP 6, RSP 7, the return
address 16). An FDE is found through .eh_frame_hdr (elf.find_fde); its
length and its CIE's are checked against MAX_ENTRY before pyelftools
parses them, and pyelftools reads through a MemoryStream bounded to the
segment holding the tables, so corrupt tables cost bounded reads. Any
failure, pyelftools' own assertions included, is an UnwindError.
"""

from __future__ import annotations

from elftools.dwarf.callframe import FDE, CallFrameInfo, RegisterRule
from elftools.dwarf.structs import DWARFStructs

from .elf import Image, find_fde, read_hdr
from .memory import Memory, MemoryStream, UnwindError

RBX, RBP, RSP, R12, R13, R14, R15, RA = 3, 6, 7, 12, 13, 14, 15, 16
# Registers a callee preserves (System V ABI): unchanged in the caller
# unless a rule says where they were saved.
CALLEE_SAVED = (RBX, RBP, R12, R13, R14, R15)
MAX_ENTRY = 64 * 1024
MASK = (1 << 64) - 1
_STRUCTS = DWARFStructs(little_endian=True, dwarf_format=32, address_size=8)


class Rules:
    """The row of an FDE's table that applies at one pc."""

    def __init__(self, pc: int, row: dict, ra_register: int):
        self.pc = pc
        self.row = row
        self.ra_register = ra_register


def _check_entry(memory: Memory, addr: int, what: str) -> None:
    length = memory.u32(addr)
    if length == 0 or length == 0xFFFFFFFF or length > MAX_ENTRY:
        raise UnwindError(addr, f"implausible {what} length {length:#x}")


def rules_at(memory: Memory, image: Image, pc: int) -> Rules | None:
    """The CFI rules of `pc` in `image`; None when its .eh_frame_hdr has no
    FDE covering pc. UnwindError when the image has no .eh_frame_hdr or the
    tables cannot be read or parsed."""
    if image.eh_frame_hdr is None:
        raise UnwindError(image.base, "the module has no PT_GNU_EH_FRAME (.eh_frame_hdr)")
    fde_addr = find_fde(memory, image.eh_frame_hdr, pc)
    if fde_addr is None:
        return None
    eh_frame = read_hdr(memory, image.eh_frame_hdr).eh_frame
    if not eh_frame <= fde_addr < image.eh_segment_end:
        raise UnwindError(fde_addr, "FDE outside the module's .eh_frame segment")
    _check_entry(memory, fde_addr, "FDE")
    cie_addr = (fde_addr + 4 - memory.u32(fde_addr + 4)) & MASK
    if not eh_frame <= cie_addr < image.eh_segment_end:
        raise UnwindError(fde_addr, f"the FDE's CIE pointer {cie_addr:#x} is outside .eh_frame")
    _check_entry(memory, cie_addr, "CIE")
    stream = MemoryStream(memory, eh_frame, image.eh_segment_end)
    try:
        info = CallFrameInfo(stream, image.eh_segment_end - eh_frame, 0, _STRUCTS,
                             for_eh_frame=True)
        entry = info._parse_entry_at(fde_addr)  # one entry, not the whole section
        if not isinstance(entry, FDE):
            raise UnwindError(fde_addr, "the .eh_frame_hdr entry is not an FDE")
        start = entry.header["initial_location"] & MASK
        if not start <= pc < start + entry.header["address_range"]:
            return None
        table = entry.get_decoded().table
        ra_register = entry.cie.header["return_address_register"]
    except UnwindError:
        raise
    except Exception as e:  # noqa: BLE001 - pyelftools' asserts and parse errors
        raise UnwindError(fde_addr, f"cannot parse the FDE: {type(e).__name__}: {e}") from None
    rows = [row for row in table if row["pc"] <= pc]
    if not rows:
        raise UnwindError(fde_addr, f"the FDE has no row for {pc:#x}")
    return Rules(pc, rows[-1], ra_register)


def _value(rule, cfa: int, regs: dict, memory: Memory, reg: int, keep: bool):
    if rule is None or rule.type == RegisterRule.SAME_VALUE:
        return regs.get(reg) if keep else None
    if rule.type == RegisterRule.OFFSET:
        return memory.u64((cfa + rule.arg) & MASK)
    if rule.type == RegisterRule.VAL_OFFSET:
        return (cfa + rule.arg) & MASK
    if rule.type == RegisterRule.REGISTER:
        return regs.get(rule.arg)
    return None  # UNDEFINED, or an expression this unwinder does not evaluate


def caller_registers(rules: Rules, regs: dict, memory: Memory) -> dict | None:
    """The caller's registers (RSP is the CFA, RA its pc) from the callee's
    `regs`; None when the return address is undefined there (the outermost
    frame, e.g. _start). Registers that cannot be known are None."""
    cfa_rule = rules.row["cfa"]
    if cfa_rule.expr is not None:
        raise UnwindError(rules.pc, "the CFA is a DWARF expression (not evaluated)")
    base = regs.get(cfa_rule.reg)
    if base is None:
        raise UnwindError(rules.pc, f"the CFA is based on DWARF register {cfa_rule.reg}, "
                                    f"whose value is unknown in this frame")
    cfa = (base + cfa_rule.offset) & MASK
    ra_rule = rules.row.get(rules.ra_register)
    if ra_rule is None:
        raise UnwindError(rules.pc, "the CFI gives no rule for the return address")
    if ra_rule.type == RegisterRule.UNDEFINED:
        return None
    if ra_rule.type != RegisterRule.OFFSET:
        raise UnwindError(rules.pc, f"unsupported return-address rule {ra_rule.type}")
    caller = {reg: _value(rules.row.get(reg), cfa, regs, memory, reg, True)
              for reg in CALLEE_SAVED}
    caller[RA] = memory.u64((cfa + ra_rule.arg) & MASK)
    caller[RSP] = cfa
    return caller
