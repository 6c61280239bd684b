"""A running x86-64 Linux kernel, found in an image of its physical memory.

The input is the guest's RAM as bytes: a raw image (file offset = physical
address: QEMU's `pmemsave`, `api.save_memory`) or the ELF core file of
QEMU's `dump-guest-memory`, read as its bytes (each RAM range is one
PT_LOAD whose data is contiguous in the file, and the kernel image lies in
one of them).  Only positions relative to each other inside the kernel image
matter here: the kernel is physically contiguous from `_text` to `_end`,
laid out as in its ELF file (x86-64 links every section at
__START_KERNEL_map + its physical offset).

What is found, and how:

  BTF       every header with magic 0xeB9F, version 1, and lengths and
            offsets that fit in the image; the largest blob is the
            kernel's (modules carry small split BTF; stale copies of the
            kernel's may lie in free memory), libbpf parses it.  Without
            one, "Linux version ..." anywhere tells a kernel without BTF
            from no kernel at all.
  kallsyms  by shape, with kallsyms.py's scanner over the raw bytes, in
            the part of the image around the BTF blob; the first tables
            that place a kernel (below) are the running kernel's.
  _text     where the kernel image starts in the data:
              7.0+: the self-relative kallsyms_offsets give every symbol's
                position directly (entry position + value);
              before: the offsets are relative to kallsyms_relative_base,
                which holds a run-time (relocated) address, so positions
                are anchored by the BTF blob, which sits at __start_BTF.
            The kernel's banner must then be at linux_banner.
  link-time addresses (the ISF's, as from the kernel's vmlinuz, also when
            KASLR moved it): on x86-64 `_text` is linked at
            __START_KERNEL_map (0xffffffff80000000, fixed for the
            architecture) + LOAD_PHYSICAL_ADDR (CONFIG_PHYSICAL_START
            aligned to CONFIG_PHYSICAL_ALIGN: arch/x86/kernel/vmlinux.lds.S
            places _text at __START_KERNEL).  The kernel states
            LOAD_PHYSICAL_ADDR itself: its boot header's `pref_address`
            (arch/x86/boot/header.S), which the kernel keeps, as loaded,
            in its `boot_params` (.bss, never freed).  KASLR relocates
            pointers, never that value.  When the tables give run-time
            addresses (relative_base), the KASLR offset they imply must be
            a multiple of the header's kernel_alignment; anything else is
            reported as an error rather than guessed.

Per-CPU symbols of KALLSYMS_ABSOLUTE_PERCPU kernels are offsets in the
per-CPU area and stay as they are.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from .btf import BtfError
from .kallsyms import Kallsyms, KallsymsData, KallsymsError, Symbol, iter_kallsyms
from .kernel_image import KernelImageError

BANNER = b"Linux version "
BTF_MAGIC = b"\x9f\xeb\x01\x00"  # magic 0xeB9F (little-endian), version 1, flags 0
BTF_MIN_HEADER = 24
BTF_MAX_SECTION = 256 << 20

X86_64_START_KERNEL_MAP = 0xFFFFFFFF80000000
# struct boot_params (arch/x86/include/uapi/asm/bootparam.h): the setup
# header is at 0x1f1; these are its fields' offsets in boot_params.
BOOT_HEADER_MAGIC = 0x202  # "HdrS"
BOOT_PROTOCOL = 0x206
BOOT_KERNEL_ALIGNMENT = 0x230
BOOT_PREF_ADDRESS = 0x258  # boot protocol 2.10+
BOOT_PARAMS_SIZE = 0x1000


class NoKernelError(KernelImageError):
    """The data holds no Linux kernel."""


def no_btf_message(name: str, release: str | None, what: str = "no BTF blob in the memory image") -> str:
    """The one message for a kernel without BTF: its types are only in the
    DWARF of its debug package's vmlinux."""
    version = release or "<release>"
    return (f"{name}: {what}: the kernel was built without CONFIG_DEBUG_INFO_BTF, so its types "
            f"are only in DWARF debug information: its symbol table must be made from the vmlinux "
            f"of its debug package (Debian: linux-image-{version}-dbg), with `pyrebox symbols "
            f"/usr/lib/debug/boot/vmlinux-{version} -o kernel.isf.json.xz`")


@dataclass(frozen=True)
class BtfBlob:
    offset: int  # in the data
    size: int
    problem: str = ""  # why the header is unusable, "" when it is sane


def btf_header_at(data, at: int) -> BtfBlob:
    """The blob whose header starts at AT, or its problem."""
    if at + BTF_MIN_HEADER > len(data):
        return BtfBlob(at, 0, "header truncated by the end of the image")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack("<5I", bytes(data[at + 4 : at + 24]))
    if hdr_len < BTF_MIN_HEADER or hdr_len > 256 or hdr_len % 4:
        return BtfBlob(at, 0, f"header length {hdr_len} is not a BTF header's")
    if type_off % 4 or type_len % 4:
        return BtfBlob(at, 0, f"type section ({type_off:#x}, {type_len} bytes) is not 4-aligned")
    if not type_len or not str_len or type_len > BTF_MAX_SECTION or str_len > BTF_MAX_SECTION:
        return BtfBlob(at, 0, f"section lengths {type_len} (types), {str_len} (strings) are not sane")
    if type_off + type_len > str_off and str_off + str_len > type_off:
        return BtfBlob(at, 0, "type and string sections overlap")
    size = hdr_len + max(type_off + type_len, str_off + str_len)
    if at + size > len(data):
        return BtfBlob(at, size, f"the blob ({size} bytes) runs past the end of the image")
    strings = at + hdr_len + str_off
    if bytes(data[strings : strings + 1]) != b"\0" or bytes(data[strings + str_len - 1 : strings + str_len]) != b"\0":
        return BtfBlob(at, size, "the string section does not start and end with NUL")
    return BtfBlob(at, size)


def find_btf(data) -> list[BtfBlob]:
    """Every place with the BTF magic, sane headers first, largest first."""
    found = [btf_header_at(data, at) for at in find_all(data, BTF_MAGIC)]
    return sorted(found, key=lambda b: (bool(b.problem), -b.size, b.offset))


SCAN_CHUNK = 64 << 20


def find_all(data, needle: bytes, start: int = 0, end: int | None = None):
    """Offsets of NEEDLE in DATA[START:END], in order, searched chunk by
    chunk in copies: DATA may be an mmap, whose own find() can read past
    the end of the mapping (CPython 3.11 crashes on a file whose size is a
    multiple of the page size, like a memory image)."""
    end = len(data) if end is None else min(end, len(data))
    if isinstance(data, (bytes, bytearray)):  # in memory: searched in place
        at = data.find(needle, start, end)
        while at >= 0:
            yield at
            at = data.find(needle, at + 1, end)
        return
    pos = start
    while pos < end:
        stop = min(end, pos + SCAN_CHUNK)
        chunk = bytes(data[pos : min(end, stop + len(needle) - 1)])
        at = chunk.find(needle)
        while at >= 0:
            if pos + at >= stop:
                break
            yield pos + at
            at = chunk.find(needle, at + 1)
        pos = stop


def find_first(data, needle: bytes) -> int:
    return next(find_all(data, needle), -1)


def _release_of(banner: bytes) -> str | None:
    words = banner.split(b" ", 3)
    return words[2].decode("ascii", "replace") if len(words) > 2 else None


def banner_release(data) -> str | None:
    """The release of the first "Linux version" banner in DATA, if any."""
    at = find_first(data, BANNER)
    if at < 0:
        return None
    return _release_of(bytes(data[at : at + 256]).split(b"\0", 1)[0])


@dataclass
class MemoryKernel:
    """The kernel found in a memory image: its BTF blob, its symbols at
    link-time addresses, and reads by link-time address."""

    name: str
    data: bytes  # the window of the memory image that holds the kernel
    base: int  # where DATA starts in the image
    text_at: int  # where _text is in DATA
    link_text: int  # _text's link-time address
    btf_blob: BtfBlob  # its offset is in DATA
    kallsyms: Kallsyms
    pointer_size: int = 8

    def offset_of(self, address: int) -> int | None:
        offset = self.text_at + (address - self.link_text)
        return offset if 0 <= offset < len(self.data) else None

    def read(self, address: int, size: int) -> bytes:
        offset = self.offset_of(address)
        if offset is None or offset + size > len(self.data):
            raise KernelImageError(f"{self.name}: address {address:#x} (+{size}) is not in the image")
        return bytes(self.data[offset : offset + size])

    def read_cstring(self, address: int, limit: int = 4096) -> bytes:
        offset = self.offset_of(address)
        if offset is None:
            raise KernelImageError(f"{self.name}: address {address:#x} is not in the image")
        end = self.data.find(b"\0", offset, offset + limit)
        if end < 0:
            raise KernelImageError(f"{self.name}: no string end within {limit} bytes of {address:#x}")
        return bytes(self.data[offset:end])

    def btf_bytes(self) -> bytes:
        at = self.btf_blob.offset
        return bytes(self.data[at : at + self.btf_blob.size])


def _symbol_index(kallsyms: Kallsyms, name: str) -> int | None:
    for i, sym in enumerate(kallsyms.symbols):
        if sym.name == name:
            return i
    return None


def _address_of(kallsyms: Kallsyms, name: str) -> int | None:
    i = _symbol_index(kallsyms, name)
    return None if i is None else kallsyms.symbols[i].address


def _text_position(name: str, data, kallsyms: Kallsyms, blobs: list[BtfBlob]) -> tuple[int, BtfBlob]:
    """(where _text is in DATA, the kernel's BTF blob)."""
    text = _address_of(kallsyms, "_text")
    start_btf = _address_of(kallsyms, "__start_BTF")
    banner = _address_of(kallsyms, "linux_banner")
    if text is None or banner is None:
        raise KallsymsError(f"{name}: kallsyms has no _text or linux_banner")

    def banner_at(text_at: int) -> bool:
        at = text_at + banner - text
        return 0 <= at and bytes(data[at : at + len(BANNER)]) == BANNER

    if kallsyms.encoding == "self_relative":
        # Positions already: _text's entry says where _text is.
        text_at = text
        if not banner_at(text_at):
            raise KallsymsError(f"{name}: no kernel banner at linux_banner ({text_at + banner - text:#x} "
                                "in the kernel's part of the image): the kallsyms tables found do not fit")
        blob = next((b for b in blobs if start_btf is not None and b.offset == text_at + start_btf - text),
                    blobs[0])
        return text_at, blob
    # Run-time addresses: the BTF blob at __start_BTF anchors them.
    if start_btf is None:
        raise KallsymsError(f"{name}: kallsyms has no __start_BTF: the kernel cannot be placed in the image")
    for blob in blobs:
        text_at = blob.offset - (start_btf - text)
        if banner_at(text_at):
            return text_at, blob
    raise KallsymsError(f"{name}: no BTF blob found at the kernel's __start_BTF "
                        "(with its banner at linux_banner)")


def _link_text(name: str, data, text_at: int, kallsyms: Kallsyms, base: int) -> tuple[int, int]:
    """(_text's link-time address, the kernel's alignment), from the boot
    header the kernel keeps in boot_params (see the module's comment)."""
    text = _address_of(kallsyms, "_text")
    boot_params = _address_of(kallsyms, "boot_params")
    if boot_params is None:
        raise KallsymsError(f"{name}: kallsyms has no boot_params: not an x86 kernel?")
    at = text_at + boot_params - text
    header = bytes(data[at : at + BOOT_PARAMS_SIZE])
    if len(header) < BOOT_PARAMS_SIZE or header[BOOT_HEADER_MAGIC : BOOT_HEADER_MAGIC + 4] != b"HdrS":
        raise KallsymsError(f"{name}: no boot header (HdrS) in boot_params at offset {base + at:#x}: "
                            "cannot tell the kernel's link-time addresses")
    (protocol,) = struct.unpack_from("<H", header, BOOT_PROTOCOL)
    (alignment,) = struct.unpack_from("<I", header, BOOT_KERNEL_ALIGNMENT)
    (pref_address,) = struct.unpack_from("<Q", header, BOOT_PREF_ADDRESS)
    if protocol < 0x20A or not alignment or alignment & (alignment - 1) or pref_address % alignment \
            or not 0 < pref_address < (1 << 30):
        raise KallsymsError(f"{name}: the boot header in boot_params (offset {base + at:#x}, protocol "
                            f"{protocol:#x}) gives no usable load address ({pref_address:#x}, "
                            f"alignment {alignment:#x})")
    return X86_64_START_KERNEL_MAP + pref_address, alignment


def _to_link_time(kallsyms: Kallsyms, delta: int, text_at: int, link_text: int) -> Kallsyms:
    mask = (1 << 64) - 1
    symbols = [
        sym if i in kallsyms.absolute else Symbol(sym.name, (sym.address + delta) & mask, sym.type)
        for i, sym in enumerate(kallsyms.symbols)
    ]
    tables = {label: link_text + (offset - text_at) for label, offset in kallsyms.tables.items()}
    return replace(kallsyms, symbols=symbols, tables=tables)


# The kernel image around its BTF blob: a kernel's text, data and bss are
# ~50 MiB from _text to _end (Debian's 5.10 to 7.3: 44 to 53 MiB), so this
# much either side of the blob holds all of it with room to spare.
WINDOW = 128 << 20
PAGE = 4096


def find_kernel(data, name: str) -> MemoryKernel:
    """The x86-64 Linux kernel in the memory image DATA (bytes, an mmap, a
    PhysicalMemory: anything with len() and slices that return bytes), its
    symbols at link-time addresses.  Raises NoKernelError when there is none,
    BtfError when it has no or a broken BTF blob, KallsymsError when its
    tables cannot be read."""
    blobs = find_btf(data)
    sane = [b for b in blobs if not b.problem]
    if not sane:
        # (With a sane blob, the banner is looked for at linux_banner.)
        if find_first(data, BANNER) < 0:
            raise NoKernelError(f"{name}: no Linux kernel in this memory image (no \"Linux version\" banner)")
        if blobs:
            b = blobs[0]
            raise BtfError(f"{name}: the BTF blob at offset {b.offset:#x} is corrupt: {b.problem}")
        raise BtfError(no_btf_message(name, banner_release(data)))
    # The rest works on a copy of the part that holds the kernel.
    largest = [b for b in sane if b.size == sane[0].size]
    # Page-aligned, so that offsets in the window keep the alignments the
    # tables are found by.
    base = max(0, min(b.offset for b in largest) - WINDOW) & -PAGE
    window = bytes(data[base : max(b.offset for b in largest) + sane[0].size + WINDOW])
    local = [replace(b, offset=b.offset - base) for b in sane if base <= b.offset < base + len(window)]
    return _kernel_in(window, base, name, local)


def _kernel_in(data: bytes, base: int, name: str, blobs: list[BtfBlob]) -> MemoryKernel:
    """The kernel in DATA (the window at BASE): the first kallsyms tables
    that place a kernel (banner, BTF, boot header where they say); memory
    may hold stale copies of the tables (e.g. what the boot decompressor
    left), which do not.  Errors are the first tables'."""
    first_error = None
    # Positions: an offset is its own address; the text section is unknown.
    for raw in iter_kallsyms(KallsymsData(data, name, 8)):
        try:
            return _placed(data, base, name, blobs, raw)
        except KallsymsError as error:
            first_error = first_error or error
    if first_error is not None:
        raise first_error
    raise KallsymsError(f"{name}: no kallsyms tables found (kernel built without CONFIG_KALLSYMS_ALL?)")


def _placed(data: bytes, base: int, name: str, blobs: list[BtfBlob], raw: Kallsyms) -> MemoryKernel:
    text_at, blob = _text_position(name, data, raw, blobs)
    # A stale copy of relative-base tables decodes to the same addresses:
    # the tables must lie in the kernel image they describe.
    end = _address_of(raw, "_end")
    if end is not None:
        image_end = text_at + end - _address_of(raw, "_text")
        outside = [label for label, at in raw.tables.items() if not text_at <= at < image_end]
        if outside:
            raise KallsymsError(f"{name}: kallsyms tables at {base + raw.tables[outside[0]]:#x} lie outside "
                                f"the kernel image they describe ({base + text_at:#x}-{base + image_end:#x})")
    link_text, alignment = _link_text(name, data, text_at, raw, base)
    text = _address_of(raw, "_text")
    if raw.encoding != "self_relative":
        slide = text - link_text
        if slide % alignment:
            raise KallsymsError(f"{name}: the run-time _text {text:#x} is not the link-time {link_text:#x} "
                                f"moved by a multiple of the kernel's alignment {alignment:#x}")
    kallsyms = _to_link_time(raw, link_text - text, text_at, link_text)
    return MemoryKernel(name, data, base, text_at, link_text, blob, kallsyms)


class PhysicalMemory:
    """Guest physical memory read through a callable, as the bytes-like
    object find_kernel searches: len() and slices (each slice is one or
    more READ_PHYS calls; the holes between RANGES read as zeros, without
    a call).

    READ_PHYS(address, size) -> bytes: exactly SIZE bytes of guest physical
    memory at ADDRESS.  It is called only inside RANGES (the RAM: [start,
    end) pairs, sorted), with SIZE at most SCAN_CHUNK, from the thread
    that runs find_kernel; a failure it raises goes to the
    caller as it is."""

    def __init__(self, read_phys, size: int, ranges=None):
        self.read_phys = read_phys
        self.size = size
        self.ranges = [(max(0, a), min(b, size)) for a, b in (ranges or [(0, size)]) if a < min(b, size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("PhysicalMemory supports slices only")
        start, stop, _ = key.indices(self.size)
        return bytes(self.copy(start, stop))

    def copy(self, start: int, stop: int) -> bytearray:
        """[START, STOP) as one new bytearray (the holes as zeros), read in
        pieces of at most SCAN_CHUNK."""
        out = bytearray(max(0, stop - start))
        for a, b in self.ranges:
            lo, hi = max(a, start), min(b, stop)
            for at in range(lo, hi, SCAN_CHUNK):
                size = min(SCAN_CHUNK, hi - at)
                piece = self.read_phys(at, size)
                if len(piece) != size:
                    raise KernelImageError(f"guest memory: {size} bytes asked at {at:#x}, {len(piece)} read")
                out[at - start:at - start + size] = piece
        return out


def is_core_file(data) -> bool:
    """An ELF core file (QEMU's dump-guest-memory)."""
    head = bytes(data[:0x12])
    return head[:4] == b"\x7fELF" and len(head) == 0x12 and struct.unpack_from("<H", head, 0x10)[0] == 4


def open_image(path: str | Path):
    """The file's bytes, memory-mapped (a memory image is large and mostly
    read once by find())."""
    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            return b""
