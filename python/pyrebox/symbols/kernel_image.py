"""A Linux kernel image as an ELF file: bzImage unpacking and ELF helpers.

`load_kernel(path)` accepts an uncompressed `vmlinux` ELF, an x86 bzImage
(`vmlinuz`) or a bare compressed ELF, and returns an `Elf` over the
uncompressed bytes.  A bzImage's payload is found through its setup header
(`payload_offset`/`payload_length`, boot protocol >= 2.08) and, failing that,
by scanning for a compression magic whose stream unpacks to an ELF file.

Compressions: xz, gzip, bzip2 and legacy lzma with the standard library; zstd
and lz4 (the kernel's "legacy" lz4 framing) with the PyPI `zstandard` and
`lz4` packages, imported only when such a payload is met.

Only little-endian ELF (32- and 64-bit) is read: the kernels we introspect are
x86.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

ELF_MAGIC = b"\x7fELF"

PT_LOAD = 1
SHT_NOBITS = 8


class KernelImageError(Exception):
    """The file is not a kernel image this module can read (message names it)."""


# ------------------------------------------------------------------------- ELF


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


class Elf:
    """Read-only view of a little-endian ELF file held in memory."""

    def __init__(self, data: bytes, name: str = "<memory>"):
        self.data = data
        self.name = name
        if len(data) < 52 or data[:4] != ELF_MAGIC:
            raise KernelImageError(f"{name}: not an ELF file")
        elf_class, endian = data[4], data[5]
        if endian != 1:
            raise KernelImageError(f"{name}: big-endian ELF is not supported")
        if elf_class == 2:
            self.bits = 64
            (self.machine,) = struct.unpack_from("<H", data, 0x12)
            (phoff, shoff) = struct.unpack_from("<QQ", data, 0x20)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
        elif elf_class == 1:
            self.bits = 32
            (self.machine,) = struct.unpack_from("<H", data, 0x12)
            (phoff, shoff) = struct.unpack_from("<II", data, 0x1C)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x2A)
        else:
            raise KernelImageError(f"{name}: unknown ELF class {elf_class}")
        self.pointer_size = self.bits // 8
        try:
            self.segments = [self._segment(phoff + i * phentsize) for i in range(phnum)]
            self.sections = self._sections(shoff, shentsize, shnum, shstrndx)
        except (struct.error, IndexError, UnicodeDecodeError) as error:
            raise KernelImageError(f"{name}: truncated or corrupt ELF headers ({error})") from None

    def _segment(self, at: int) -> Segment:
        if self.bits == 64:
            p_type, flags, offset, vaddr, paddr, filesz, memsz = struct.unpack_from("<IIQQQQQ", self.data, at)
        else:
            p_type, offset, vaddr, paddr, filesz, memsz, flags = struct.unpack_from("<IIIIIII", self.data, at)
        return Segment(p_type, flags, offset, vaddr, paddr, filesz, memsz)

    def _sections(self, shoff: int, shentsize: int, shnum: int, shstrndx: int) -> list[Section]:
        if shoff == 0 or shnum == 0:
            return []
        raw = []
        for i in range(shnum):
            at = shoff + i * shentsize
            if self.bits == 64:
                name, s_type, flags, addr, offset, size = struct.unpack_from("<IIQQQQ", self.data, at)
            else:
                name, s_type, flags, addr, offset, size = struct.unpack_from("<IIIIII", self.data, at)
            raw.append((name, s_type, flags, addr, offset, size))
        strtab = raw[shstrndx] if shstrndx < len(raw) else None
        sections = []
        for name_offset, s_type, flags, addr, offset, size in raw:
            name = ""
            if strtab is not None:
                start = strtab[4] + name_offset
                end = self.data.index(b"\0", start)
                name = self.data[start:end].decode()
            sections.append(Section(name, s_type, flags, addr, offset, size))
        return sections

    # -- look-ups

    def section(self, name: str) -> Section | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None

    def section_data(self, name: str) -> bytes | None:
        section = self.section(name)
        if section is None or section.type == SHT_NOBITS:
            return None
        return self.data[section.offset : section.offset + section.size]

    def load_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_LOAD]

    def vaddr_to_offset(self, vaddr: int) -> int | None:
        """File offset holding virtual address VADDR (through PT_LOAD), or None."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return seg.offset + (vaddr - seg.vaddr)
        return None

    def offset_to_vaddr(self, offset: int) -> int | None:
        """Virtual address at which file offset OFFSET is loaded, or None."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.offset <= offset < seg.offset + seg.filesz:
                return seg.vaddr + (offset - seg.offset)
        return None

    def read(self, vaddr: int, size: int) -> bytes:
        """SIZE bytes at virtual address VADDR (must lie in one segment's file data)."""
        offset = self.vaddr_to_offset(vaddr)
        if offset is None or self.vaddr_to_offset(vaddr + size - 1) != offset + size - 1:
            raise KernelImageError(f"{self.name}: address {vaddr:#x} (+{size}) is not in the file")
        return self.data[offset : offset + size]

    def read_cstring(self, vaddr: int, limit: int = 4096) -> bytes:
        """The NUL-terminated bytes at VADDR, without the NUL."""
        offset = self.vaddr_to_offset(vaddr)
        if offset is None:
            raise KernelImageError(f"{self.name}: address {vaddr:#x} is not in the file")
        end = self.data.find(b"\0", offset, offset + limit)
        if end < 0:
            raise KernelImageError(f"{self.name}: no string end within {limit} bytes of {vaddr:#x}")
        return self.data[offset:end]


# ------------------------------------------------------------- decompression


# Each decompressor takes the stream (and whatever follows it) and LIMIT, the
# most bytes to return (-1: all).  A small LIMIT is a cheap probe: candidates
# found by scanning for a magic are checked for an ELF header before the full
# stream is unpacked.


def _xz(data: bytes, limit: int) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data, limit)


def _lzma_alone(data: bytes, limit: int) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, limit)


def _gzip(data: bytes, limit: int) -> bytes:
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, max(limit, 0))


def _bzip2(data: bytes, limit: int) -> bytes:
    return bz2.BZ2Decompressor().decompress(data, limit)


def _zstd(data: bytes, limit: int) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise KernelImageError("a zstd-compressed kernel needs the PyPI package zstandard") from None
    try:
        if limit >= 0:
            return zstandard.ZstdDecompressor().stream_reader(data).read(limit)
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except zstandard.ZstdError as error:
        raise ValueError(str(error)) from None


LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
LZ4_LEGACY_BLOCK = 8 << 20


def _lz4_legacy(data: bytes, limit: int) -> bytes:
    """The kernel's lz4 framing (`lz4 -l`): magic, then blocks each preceded
    by its compressed size and unpacking to at most 8 MiB; ends at the end of
    the data or at a size that cannot be a block (the 4-byte length the
    kernel build appends)."""
    try:
        import lz4.block
    except ImportError:
        raise KernelImageError("an lz4-compressed kernel needs the PyPI package lz4") from None
    out: list[bytes] = []
    pos, produced = 4, 0
    while pos + 4 <= len(data) and (limit < 0 or produced < limit):
        if bytes(data[pos : pos + 4]) == LZ4_LEGACY_MAGIC:  # a concatenated stream
            pos += 4
            continue
        (size,) = struct.unpack_from("<I", data, pos)
        if size == 0 or pos + 4 + size > len(data):
            break
        try:
            block = lz4.block.decompress(data[pos + 4 : pos + 4 + size], uncompressed_size=LZ4_LEGACY_BLOCK)
        except lz4.block.LZ4BlockError:
            if not out:
                raise ValueError("not an lz4 stream") from None
            break
        out.append(block)
        produced += len(block)
        pos += 4 + size
    return b"".join(out)


# (magic, name, decompressor); the payload must unpack to an ELF file.
COMPRESSIONS = (
    (b"\xfd7zXZ\x00", "xz", _xz),
    (b"\x1f\x8b\x08", "gzip", _gzip),
    (b"\x28\xb5\x2f\xfd", "zstd", _zstd),
    (LZ4_LEGACY_MAGIC, "lz4", _lz4_legacy),
    (b"BZh", "bzip2", _bzip2),
    (b"\x5d\x00\x00", "lzma", _lzma_alone),
)
DECOMPRESS_ERRORS = (ValueError, EOFError, OSError, lzma.LZMAError, zlib.error)


def _try_decompress(payload: memoryview) -> bytes | None:
    """The ELF file PAYLOAD's compressed stream unpacks to, or None."""
    head = bytes(payload[:8])
    for magic, _, decompress in COMPRESSIONS:
        if head.startswith(magic):
            try:
                if not decompress(payload, len(ELF_MAGIC)).startswith(ELF_MAGIC):
                    return None
                return decompress(payload, -1)
            except DECOMPRESS_ERRORS:
                return None
    return None


def _bzimage_payload(data: bytes) -> memoryview | None:
    """The compressed payload named by an x86 boot header, if any."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    (version,) = struct.unpack_from("<H", data, 0x206)
    if version < 0x208:
        return None
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    if payload_length == 0 or start + payload_length > len(data):
        return None
    return memoryview(data)[start : start + payload_length]


def extract_elf(data: bytes, name: str) -> bytes:
    """The uncompressed kernel ELF inside DATA (the contents of file NAME)."""
    if data.startswith(ELF_MAGIC):
        return data
    payload = _bzimage_payload(data)
    if payload is not None:
        elf = _try_decompress(payload)
        if elf is not None:
            return elf
    # No usable header: try each place a known compression magic starts,
    # in file order, until one unpacks to an ELF file.
    candidates = []
    for magic, _, _ in COMPRESSIONS:
        at = data.find(magic)
        while at >= 0:
            candidates.append(at)
            at = data.find(magic, at + 1)
    view = memoryview(data)
    for at in sorted(candidates):
        elf = _try_decompress(view[at:])
        if elf is not None:
            return elf
    raise KernelImageError(
        f"{name}: not a Linux kernel image (no ELF file, bzImage payload or compressed ELF "
        f"({', '.join(c[1] for c in COMPRESSIONS)}) found)"
    )


def load_kernel(path: str | Path) -> Elf:
    """The kernel ELF of the file at PATH (vmlinux, bzImage or compressed ELF)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise KernelImageError(f"{path}: cannot read: {error.strerror or error}") from None
    return Elf(extract_elf(data, str(path)), str(path))
