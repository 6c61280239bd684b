"""Synthetic guest memory for the unwinder's tests: byte regions at
addresses, read as the guest's would be (a read that is not wholly inside
one region fails), and the loaded image of a host ELF file."""

from __future__ import annotations

import struct

from elftools.elf.elffile import ELFFile


class FakeMemory:
    def __init__(self):
        self.regions: list[tuple[int, bytearray]] = []
        self.reads = 0

    def add(self, addr: int, data: bytes) -> int:
        self.regions.append((addr, bytearray(data)))
        return addr

    def words(self, addr: int, *values: int) -> int:
        return self.add(addr, struct.pack(f"<{len(values)}Q", *values))

    def read(self, addr: int, size: int) -> bytes:
        self.reads += 1
        for start, data in self.regions:
            if start <= addr and addr + size <= start + len(data):
                return bytes(data[addr - start:addr - start + size])
        # A page-sized read of the unwinder may overlap a region's edge:
        # give what is there, as a page that is partly inside a region.
        out = bytearray(size)
        hit = False
        for start, data in self.regions:
            lo, hi = max(addr, start), min(addr + size, start + len(data))
            if lo < hi:
                out[lo - addr:hi - addr] = data[lo - start:hi - start]
                hit = True
        if not hit:
            raise ValueError(f"unmapped {addr:#x}")
        return bytes(out)

    def poke(self, addr: int, data: bytes) -> None:
        for start, region in self.regions:
            if start <= addr and addr + len(data) <= start + len(region):
                region[addr - start:addr - start + len(data)] = data
                return
        raise ValueError(f"unmapped {addr:#x}")


def load_elf(memory: FakeMemory, path: str) -> tuple[int, int, dict]:
    """Maps the PT_LOAD segments of a non-PIE ELF file as the loader would
    (page-aligned, zero-filled bss); returns (base, size, {name: (start, end)})
    of its function symbols."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        lo = min(s["p_vaddr"] for s in loads) & ~0xFFF
        hi = max(s["p_vaddr"] + s["p_memsz"] for s in loads)
        image = bytearray(((hi - lo) + 0xFFF) & ~0xFFF)
        for s in loads:
            f.seek(s["p_offset"] & ~0xFFF)
            head = s["p_vaddr"] & 0xFFF
            data = f.read(head + s["p_filesz"])
            image[s["p_vaddr"] - head - lo:s["p_vaddr"] - head - lo + len(data)] = data
        symbols = {sym.name: (sym["st_value"], sym["st_value"] + sym["st_size"])
                   for sym in elf.get_section_by_name(".symtab").iter_symbols()
                   if sym["st_info"]["type"] == "STT_FUNC" and sym["st_size"]}
    memory.add(lo, bytes(image))
    return lo, len(image), symbols


def function_at(symbols: dict, addr: int) -> str | None:
    for name, (start, end) in symbols.items():
        if start <= addr < end:
            return name
    return None


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pad(entry: bytes) -> bytes:
    """A CIE or FDE body padded with DW_CFA_nop to 4 bytes, length first."""
    body = entry + b"\x00" * (-(len(entry) + 4) % 4)
    return struct.pack("<I", len(body)) + body


def hand_built_image(base: int) -> tuple[bytes, dict]:
    """A 4 KiB ET_EXEC image at `base` (one RX PT_LOAD and PT_GNU_EH_FRAME),
    with a 5-byte call at +0x100 and at +0x180, and an .eh_frame_hdr and
    .eh_frame written here byte by byte: one CIE (CFA = RSP+8, return
    address at CFA-8) and two FDEs. [+0x100, +0x180): a frame-pointer body
    (CFA = RBP+16, RBP saved at CFA-16). [+0x180, +0x200): the outermost
    function (return address undefined). Returns the bytes and the
    addresses of interest."""
    image = bytearray(b"\xcc" * 0x1000)
    image[0x100:0x105] = b"\xe8\x00\x00\x00\x00"
    image[0x180:0x185] = b"\xe8\x00\x00\x00\x00"
    hdr, eh = 0x200, 0x240
    cie = _pad(struct.pack("<I", 0) + b"\x01zR\x00" + _uleb(1) + b"\x78" + _uleb(16)
               + _uleb(1) + b"\x1b"            # FDE pointers: pcrel | sdata4
               + b"\x0c\x07\x08"              # DW_CFA_def_cfa rsp, 8
               + b"\x90\x01")                 # DW_CFA_offset r16 (RA), cfa-8
    fdes, at = [], eh + len(cie)

    def fde(start: int, end: int, instructions: bytes) -> bytes:
        nonlocal at
        pointer = at + 4 - eh                  # back to the CIE
        location = start - (at + 8)            # pcrel from the field itself
        entry = _pad(struct.pack("<Iii", pointer, location, end - start) + _uleb(0)
                     + instructions)
        fdes.append((start, at))
        at += len(entry)
        return entry

    body = fde(0x100, 0x180, b"\x0c\x06\x10"  # DW_CFA_def_cfa rbp, 16
               + b"\x86\x02")                 # DW_CFA_offset rbp, cfa-16
    outer = fde(0x180, 0x200, b"\x07\x10")    # DW_CFA_undefined r16
    eh_frame = cie + body + outer + b"\x00" * 4
    image[eh:eh + len(eh_frame)] = eh_frame
    table = b"".join(struct.pack("<ii", start - hdr, fde_at - hdr) for start, fde_at in fdes)
    image[hdr:hdr + 12] = b"\x01\x1b\x03\x3b" + struct.pack("<iI", eh - (hdr + 4), len(fdes))
    image[hdr + 12:hdr + 12 + len(table)] = table
    header = (b"\x7fELF\x02\x01\x01" + b"\x00" * 9
              + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, base + 0x100, 64, 0, 0, 64, 56, 2,
                            64, 0, 0))
    image[:64] = header
    image[64:120] = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, 0x1000, 0x1000, 0x1000)
    image[120:176] = struct.pack("<IIQQQQQQ", 0x6474E550, 4, hdr, base + hdr, base + hdr,
                                 12 + len(table), 12 + len(table), 4)
    return bytes(image), {"call_body": base + 0x105, "call_outer": base + 0x185,
                          "body": base + 0x150}
