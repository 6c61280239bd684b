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


# Sizes of the ELF file header, a program header and a section header.
ELF_HEADER_SIZE = {64: 64, 32: 52}
PHDR_SIZE = {64: 56, 32: 32}
SHDR_SIZE = {64: 64, 32: 40}
SHN_UNDEF = 0


class Elf:
    """Read-only view of a little-endian ELF file held in memory.

    Every offset and count the headers give is checked against the file
    before it is used: a malformed file raises KernelImageError (one
    message naming the file, the table and the numbers), never another
    exception."""

    def __init__(self, data: bytes, name: str = "<memory>"):
        self.data = data
        self.name = name
        if len(data) < 52 or data[:4] != ELF_MAGIC:
            raise KernelImageError(f"{name}: not an ELF file")
        elf_class, endian = data[4], data[5]
        if endian != 1:
            raise KernelImageError(f"{name}: big-endian ELF is not supported")
        if elf_class not in (1, 2):
            raise KernelImageError(f"{name}: unknown ELF class {elf_class}")
        self.bits = 64 if elf_class == 2 else 32
        if len(data) < ELF_HEADER_SIZE[self.bits]:
            raise KernelImageError(f"{name}: truncated ELF header ({len(data)} bytes, a {self.bits}-bit "
                                   f"one has {ELF_HEADER_SIZE[self.bits]})")
        if self.bits == 64:
            (self.machine,) = struct.unpack_from("<H", data, 0x12)
            (phoff, shoff) = struct.unpack_from("<QQ", data, 0x20)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
        else:
            (self.machine,) = struct.unpack_from("<H", data, 0x12)
            (phoff, shoff) = struct.unpack_from("<II", data, 0x1C)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x2A)
        self.pointer_size = self.bits // 8
        if phoff == 0:
            phnum = 0
        if shoff == 0:
            shnum = 0
        self._check_table("program header", phoff, phentsize, phnum, PHDR_SIZE[self.bits])
        self._check_table("section header", shoff, shentsize, shnum, SHDR_SIZE[self.bits])
        self.segments = [self._segment(phoff + i * phentsize) for i in range(phnum)]
        self.sections = self._sections(shoff, shentsize, shnum, shstrndx)

    def _check_table(self, what: str, offset: int, entry_size: int, count: int, minimum: int) -> None:
        """The COUNT entries of ENTRY_SIZE bytes at OFFSET lie in the file,
        each big enough for the header it holds."""
        if count == 0:
            return
        if entry_size < minimum:
            raise KernelImageError(f"{self.name}: corrupt ELF header: {what} entries of {entry_size} bytes "
                                   f"(a {self.bits}-bit one has {minimum})")
        end = offset + count * entry_size
        if end > len(self.data):
            raise KernelImageError(f"{self.name}: corrupt ELF header: the {what} table ({count} entries of "
                                   f"{entry_size} bytes at offset {offset:#x}) runs past the end of the file "
                                   f"({len(self.data)} bytes)")

    def _segment(self, at: int) -> Segment:
        if self.bits == 64:
            p_type, flags, offset, vaddr, paddr, filesz, memsz = struct.unpack_from("<IIQQQQQ", self.data, at)
        else:
            p_type, offset, vaddr, paddr, filesz, memsz, flags = struct.unpack_from("<IIIIIII", self.data, at)
        return Segment(p_type, flags, offset, vaddr, paddr, filesz, memsz)

    def _sections(self, shoff: int, shentsize: int, shnum: int, shstrndx: int) -> list[Section]:
        raw = []
        for i in range(shnum):
            at = shoff + i * shentsize
            if self.bits == 64:
                name, s_type, flags, addr, offset, size = struct.unpack_from("<IIQQQQ", self.data, at)
            else:
                name, s_type, flags, addr, offset, size = struct.unpack_from("<IIIIII", self.data, at)
            raw.append((name, s_type, flags, addr, offset, size))
        if shstrndx == SHN_UNDEF or not raw:
            names = None  # no section names
        elif shstrndx >= len(raw):
            raise KernelImageError(f"{self.name}: corrupt ELF header: the section name table is section "
                                   f"{shstrndx}, of {len(raw)}")
        else:
            _, names_type, _, _, names_offset, names_size = raw[shstrndx]
            if names_type == SHT_NOBITS or names_offset + names_size > len(self.data):
                raise KernelImageError(f"{self.name}: corrupt ELF file: the section name table ({names_size} "
                                       f"bytes at offset {names_offset:#x}) is not in the file "
                                       f"({len(self.data)} bytes)")
            names = (names_offset, names_size)
        return [Section(self._section_name(names, index, name_offset), s_type, flags, addr, offset, size)
                for index, (name_offset, s_type, flags, addr, offset, size) in enumerate(raw)]

    def _section_name(self, names: tuple[int, int] | None, index: int, at: int) -> str:
        """Section INDEX's name: NUL-terminated at AT in the name table
        NAMES ((offset, size) in the file)."""
        if names is None:
            return ""
        start, size = names
        end = self.data.find(b"\0", start + at, start + size) if at < size else -1
        if end < 0:
            raise KernelImageError(f"{self.name}: corrupt ELF file: the name of section {index} (at {at:#x} "
                                   f"in the section name table, {size} bytes) has no end in it")
        return self.data[start + at : end].decode("latin-1")

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
        if section.offset + section.size > len(self.data):
            raise KernelImageError(f"{self.name}: corrupt ELF file: section {name} ({section.size} bytes at "
                                   f"offset {section.offset:#x}) runs past the end of the file "
                                   f"({len(self.data)} bytes)")
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
        if (offset is None or self.vaddr_to_offset(vaddr + size - 1) != offset + size - 1
                or offset + size > len(self.data)):
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
# most bytes to return (at least 1), and unpacks no more than about that: the
# memory a hostile stream can take is bounded by LIMIT.  A small LIMIT is a
# cheap probe: candidates found by scanning for a magic are checked for an
# ELF header before the stream is unpacked up to the cap (MAX_KERNEL_ELF).


def _xz(data: bytes, limit: int) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data, limit)


def _lzma_alone(data: bytes, limit: int) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, limit)


def _gzip(data: bytes, limit: int) -> bytes:
    # (A max_length of 0 would mean no limit.)
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, max(limit, 1))


def _bzip2(data: bytes, limit: int) -> bytes:
    return bz2.BZ2Decompressor().decompress(data, limit)


def _zstd(data: bytes, limit: int) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise KernelImageError("a zstd-compressed kernel needs the PyPI package zstandard") from None
    # The input goes in in small pieces: a piece unpacks to at most
    # ZSTD_PIECE / 4 blocks of 128 KiB (a block takes at least 4 bytes), so
    # the output passes LIMIT by at most 32 MiB.
    try:
        unpacker = zstandard.ZstdDecompressor().decompressobj()
        out: list[bytes] = []
        produced = 0
        for at in range(0, len(data), ZSTD_PIECE):
            if produced >= limit or unpacker.eof:
                break
            chunk = unpacker.decompress(data[at : at + ZSTD_PIECE])
            out.append(chunk)
            produced += len(chunk)
        return b"".join(out)[:limit]
    except zstandard.ZstdError as error:
        raise ValueError(str(error)) from None


ZSTD_PIECE = 1024

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
    while pos + 4 <= len(data) and produced < limit:
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


# The most an unpacked kernel payload may be: 512 MiB.  A Debian vmlinux is
# 60-70 MB; the cap leaves a wide margin and keeps a hostile file (an xz
# "bomb": 300 KB unpacking to gigabytes) from taking more memory than that.
MAX_KERNEL_ELF = 512 << 20


def _size_text(size: int) -> str:
    """512 MiB, 1 KiB, 100 bytes: a cap, for messages."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def _try_decompress(payload: memoryview, name: str, at: int, max_size: int) -> bytes | None:
    """The ELF file PAYLOAD's compressed stream unpacks to, or None.  A
    stream that unpacks to an ELF header and then to more than MAX_SIZE
    bytes raises KernelImageError (no kernel is that big: the file is
    hostile); no more than about MAX_SIZE bytes are ever unpacked."""
    head = bytes(payload[:8])
    for magic, kind, decompress in COMPRESSIONS:
        if head.startswith(magic):
            try:
                if not decompress(payload, len(ELF_MAGIC)).startswith(ELF_MAGIC):
                    return None
                elf = decompress(payload, max_size + 1)
            except DECOMPRESS_ERRORS:
                return None
            if len(elf) > max_size:
                raise KernelImageError(
                    f"{name}: the {kind} stream at offset {at:#x} unpacks to more than "
                    f"{_size_text(max_size)}, the most a kernel may be (a Debian vmlinux is 60-70 MB): "
                    "not a kernel image")
            return elf
    return None


def _bzimage_payload(data: bytes) -> tuple[int, memoryview] | None:
    """(offset, bytes) of the compressed payload named by an x86 boot
    header, if any."""
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
    return start, memoryview(data)[start : start + payload_length]


def extract_elf(data: bytes, name: str, max_size: int = MAX_KERNEL_ELF) -> bytes:
    """The uncompressed kernel ELF inside DATA (the contents of file NAME).
    A compressed one may unpack to at most MAX_SIZE bytes (see
    _try_decompress)."""
    if data.startswith(ELF_MAGIC):
        return data
    payload = _bzimage_payload(data)
    if payload is not None:
        elf = _try_decompress(payload[1], name, payload[0], max_size)
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
        elf = _try_decompress(view[at:], name, at, max_size)
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
