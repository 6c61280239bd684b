"""A module's unwind-relevant layout, read from its ELF headers as loaded in
memory: the load bias, the executable PT_LOAD ranges, and PT_GNU_EH_FRAME
(the .eh_frame_hdr), whose sorted table finds the FDE covering a pc.

Only 64-bit little-endian images are read; headers, program headers and the
lookup table are read with caps (MAX_PHDRS, MAX_FDES), so a corrupt image
costs a bounded number of reads. Section headers are not used: they are
not in any loaded segment, so a process's memory does not hold them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .memory import Memory, UnwindError

PT_LOAD = 1
PT_GNU_EH_FRAME = 0x6474E550
PF_X = 1
ET_EXEC, ET_DYN = 2, 3
MAX_PHDRS = 64
MAX_FDES = 1 << 20

# DW_EH_PE_* pointer encodings (.eh_frame_hdr).
_FIXED = {0x00: ("<Q", 8), 0x02: ("<H", 2), 0x03: ("<I", 4), 0x04: ("<Q", 8),
          0x0A: ("<h", 2), 0x0B: ("<i", 4), 0x0C: ("<q", 8)}
PE_OMIT = 0xFF
PE_PCREL = 0x10
PE_DATAREL = 0x30


@dataclass
class Image:
    base: int
    bias: int
    # [start, end) of each executable PT_LOAD, load bias applied.
    exec_ranges: list[tuple[int, int]] = field(default_factory=list)
    eh_frame_hdr: int | None = None
    # End of the PT_LOAD holding .eh_frame_hdr: .eh_frame lies in it too.
    eh_segment_end: int = 0

    def executable(self, addr: int) -> bool:
        return any(start <= addr < end for start, end in self.exec_ranges)


def parse_image(memory: Memory, base: int) -> Image:
    """The Image of the ELF file mapped at `base`; UnwindError when no valid
    64-bit ELF header is there."""
    header = memory.read(base, 64)
    if header[:4] != b"\x7fELF":
        raise UnwindError(base, "no ELF header")
    if header[4] != 2 or header[5] != 1:
        raise UnwindError(base, "not a 64-bit little-endian ELF image")
    e_type, = struct.unpack_from("<H", header, 16)
    e_phoff, = struct.unpack_from("<Q", header, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", header, 54)
    if e_type not in (ET_EXEC, ET_DYN) or e_phentsize != 56 or not 0 < e_phnum <= MAX_PHDRS \
            or e_phoff > 1 << 20:
        raise UnwindError(base, f"implausible ELF header (type {e_type}, {e_phnum} program "
                                f"headers of {e_phentsize} bytes at {e_phoff:#x})")
    table = memory.read(base + e_phoff, e_phnum * 56)
    phdrs = [struct.unpack_from("<IIQQQQQQ", table, i * 56) for i in range(e_phnum)]
    loads = [p for p in phdrs if p[0] == PT_LOAD]
    if not loads:
        raise UnwindError(base, "the ELF image has no PT_LOAD segment")
    first = min(p[3] for p in loads) & ~0xFFF
    bias = base - first if e_type == ET_DYN else 0
    image = Image(base=base, bias=bias)
    for p_type, p_flags, _off, vaddr, _pa, _filesz, memsz, _align in phdrs:
        if p_type == PT_LOAD and p_flags & PF_X:
            image.exec_ranges.append((vaddr + bias, vaddr + bias + memsz))
    for p in phdrs:
        if p[0] == PT_GNU_EH_FRAME:
            hdr = p[3] + bias
            image.eh_frame_hdr = hdr
            for load in loads:
                if load[3] + bias <= hdr < load[3] + bias + load[6]:
                    image.eh_segment_end = load[3] + bias + load[6]
            if not image.eh_segment_end:
                raise UnwindError(hdr, ".eh_frame_hdr outside every PT_LOAD segment")
    return image


def _pointer(memory: Memory, addr: int, encoding: int, hdr: int) -> tuple[int, int]:
    """(value, size) of one encoded pointer of .eh_frame_hdr at `addr`."""
    if encoding & 0x0F not in _FIXED or encoding & 0x80:
        raise UnwindError(addr, f"unsupported .eh_frame_hdr pointer encoding {encoding:#x}")
    fmt, size = _FIXED[encoding & 0x0F]
    value, = struct.unpack(fmt, memory.read(addr, size))
    relative = encoding & 0x70
    if relative == PE_PCREL:
        value += addr
    elif relative == PE_DATAREL:
        value += hdr
    elif relative:
        raise UnwindError(addr, f"unsupported .eh_frame_hdr pointer encoding {encoding:#x}")
    return value & 0xFFFFFFFFFFFFFFFF, size


@dataclass
class EhFrameHdr:
    eh_frame: int  # address of .eh_frame
    count: int
    table: int
    table_encoding: int
    entry_size: int


def read_hdr(memory: Memory, hdr: int) -> EhFrameHdr:
    version, ptr_enc, count_enc, table_enc = memory.read(hdr, 4)
    if version != 1:
        raise UnwindError(hdr, f".eh_frame_hdr version {version} (1 expected)")
    eh_frame, size = _pointer(memory, hdr + 4, ptr_enc, hdr)
    at = hdr + 4 + size
    if count_enc == PE_OMIT or table_enc == PE_OMIT:
        raise UnwindError(hdr, ".eh_frame_hdr has no search table")
    count, size = _pointer(memory, at, count_enc, hdr)
    if count > MAX_FDES:
        raise UnwindError(at, f".eh_frame_hdr claims {count} FDEs (more than {MAX_FDES})")
    at += size
    if table_enc & 0x0F not in _FIXED:
        raise UnwindError(hdr, f"unsupported .eh_frame_hdr table encoding {table_enc:#x}")
    entry = 2 * _FIXED[table_enc & 0x0F][1]
    return EhFrameHdr(eh_frame, count, at, table_enc, entry)


def find_fde(memory: Memory, hdr_addr: int, pc: int) -> int | None:
    """The address of the FDE whose initial location is the greatest one <=
    pc in the .eh_frame_hdr table at `hdr_addr`, or None when pc is before
    every entry. The FDE's own range must still be checked."""
    hdr = read_hdr(memory, hdr_addr)
    half = hdr.entry_size // 2
    lo, hi, found = 0, hdr.count - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        at = hdr.table + mid * hdr.entry_size
        start, _ = _pointer(memory, at, hdr.table_encoding, hdr_addr)
        if start <= pc:
            found = at
            lo = mid + 1
        else:
            hi = mid - 1
    if found is None:
        return None
    return _pointer(memory, found + half, hdr.table_encoding, hdr_addr)[0]
