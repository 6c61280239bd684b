"""Every kernel symbol, from the kallsyms tables inside the kernel image.

The kernel build (scripts/kallsyms.c) stores all its symbols -- not only the
exported ones -- compressed in read-only data, without ELF symbols pointing
at them in a stripped image.  They are found by their shape:

    kallsyms_token_table   256 NUL-terminated strings; byte values that stand
                           for themselves are at their own index, so "0".."9"
                           sit consecutively at 0x30..0x39
    kallsyms_token_index   256 u16: the offset of each token in the table
    kallsyms_markers       u32 (long before 4.20): offset in kallsyms_names
                           of every 256th symbol; starts at 0, increasing
    kallsyms_names         per symbol: length (1 byte, or 2 bytes when the
                           first has bit 7 set, 6.1+), then that many token
                           indices; the first character is the type letter
    kallsyms_num_syms      u32 (long before 4.20), right before the names
    kallsyms_offsets       s32 per symbol, with kallsyms_relative_base (a
                           pointer) giving addresses (KALLSYMS_BASE_RELATIVE);
                           from 7.0 self-relative (see below)
    kallsyms_addresses     a pointer per symbol (older kernels without it)
    kallsyms_seqs_of_names 3 bytes per symbol (6.2+, some 6.1 stable builds)

Three layouts, all read here (each table is located and checked on its own):

    < 6.4     [offsets, relative_base | addresses] num_syms names markers
              [seqs] token_table token_index; labels aligned to the pointer
    6.4-6.19  num_syms names markers token_table token_index offsets
              relative_base seqs; aligned to the pointer
    7.0+      num_syms names markers token_table token_index offsets seqs;
              every label `.balign 4`, and no relative_base: each offset
              is `.long _text - . + (addr - _text)`, i.e. symbol address
              minus the entry's own address (kernel/kallsyms.c reads it
              with offset_to_ptr()), so it holds wherever the image runs

Relative-base offsets are unsigned from relative_base, except with
KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP before 6.15): non-negative entries are
absolute per-CPU offsets and negative ones count down from relative_base - 1.
A candidate decoding is accepted only when the addresses are sorted and
`_text` lands on the text section (when the image says where that is).

Addresses are link-time addresses (the unrelocated image's) for an ELF file.
For a memory image (memory_image.py) the scanner runs over raw bytes with
positions for addresses; the result says how it was encoded, so that the
caller can move it to link-time addresses.
"""

from __future__ import annotations

import array
import struct
import sys
from dataclasses import dataclass, field

from .kernel_image import Elf, KernelImageError

DIGITS = b"".join(bytes([c]) + b"\0" for c in b"0123456789")


class KallsymsError(KernelImageError):
    """The kallsyms tables could not be found or decoded."""


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int
    type: str  # nm-style letter: T/t text, D/d data, R/r read-only, B/b bss, A, W, V, ...


@dataclass
class Kallsyms:
    """The decoded symbols, in table order (sorted by address), and where
    each table lives (link-time addresses), for the ISF's own symbols."""

    symbols: list[Symbol]
    # label -> link-time address of each table found (kallsyms_names, ...)
    tables: dict[str, int] = field(default_factory=dict)
    # label -> its C type, as in kernel/kallsyms_internal.h (for the ISF)
    table_types: dict[str, str] = field(default_factory=dict)
    # How the addresses were stored: "self_relative" (7.0+), "relative_base"
    # or "absolute" (kallsyms_addresses).
    encoding: str = ""
    # Indices of the symbols whose address is absolute (per-CPU offsets of
    # KALLSYMS_ABSOLUTE_PERCPU): a relocation or re-basing leaves them alone.
    absolute: frozenset[int] = frozenset()


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & -alignment


# Labels are aligned to 4 bytes (7.0+) or to the pointer size (before).
LABEL_ALIGNMENTS = (4, 8)


class KallsymsData:
    """Bytes holding the tables, with offset -> address conversion: an ELF
    file's (link-time addresses through its segments), or a memory image's
    (`positions`: an offset is its own address, text unknown)."""

    def __init__(self, data, name: str, pointer_size: int, offset_to_vaddr=None, text: int | None = None):
        self.data = data
        self.name = name
        self.ptr = pointer_size
        self._offset_to_vaddr = offset_to_vaddr
        # Link-time address of the text section (_text), when known.
        self.text = text

    @classmethod
    def of_elf(cls, elf: Elf) -> "KallsymsData":
        return cls(elf.data, elf.name, elf.pointer_size, elf.offset_to_vaddr, _text_address(elf))

    @property
    def alignments(self) -> tuple[int, ...]:
        return tuple(a for a in LABEL_ALIGNMENTS if a <= self.ptr)

    def uint(self, offset: int, size: int) -> int:
        return int.from_bytes(self.data[offset : offset + size], "little")

    def address(self, offset: int) -> int:
        if self._offset_to_vaddr is None:
            return offset
        vaddr = self._offset_to_vaddr(offset)
        if vaddr is None:
            raise KallsymsError(f"{self.name}: kallsyms table at file offset {offset:#x} is not loaded")
        return vaddr


# ------------------------------------------------------------------ tokens


def _token_tables(img: KallsymsData):
    """Yield (table offset, index offset, tokens) for every place that looks
    like kallsyms_token_table followed by a matching kallsyms_token_index."""
    data = img.data
    at = data.find(DIGITS)
    while at >= 0:
        found = _token_table_at(img, at)
        if found is not None:
            yield found
        at = data.find(DIGITS, at + 1)


def _token_table_at(img: KallsymsData, digits_at: int):
    """The token table whose token 0x30 ("0") is at DIGITS_AT, and its index.
    Token 0 cannot be found by walking back over NULs (the byte before the
    table is the previous table's last, often not 0), so the table's end
    is found walking forward, and the index that follows it says where
    "0" sits in the table."""
    data = img.data
    end = digits_at
    for _ in range(256 - ord("0")):
        nul = data.find(b"\0", end, end + 65)
        if nul < 0:
            return None
        end = nul + 1
    for alignment in img.alignments:
        index_at = _align(end, alignment)
        if index_at + 512 > len(data):
            continue
        index = struct.unpack_from("<256H", data, index_at)
        start = digits_at - index[ord("0")]
        if index[0] != 0 or start < 0 or start % 4:
            continue
        offsets, tokens, pos = [], [], start
        for _ in range(256):
            nul = data.find(b"\0", pos, pos + 65)
            if nul < 0:
                break
            offsets.append(pos - start)
            tokens.append(bytes(data[pos:nul]))
            pos = nul + 1
        if pos == end and tuple(offsets) == index:
            return start, index_at, tokens
    return None


# ---------------------------------------------------------------- markers


def _markers_before(img: KallsymsData, limit: int, floor: int):
    """Yield (offset, count, element size) of arrays that look like
    kallsyms_markers ending before LIMIT, nearest first (not below FLOOR):
    runs of at least MIN_MARKERS values that start at 0 and grow by at most
    the size of 256 names each."""
    data = img.data
    start = floor - floor % 8
    for size in (4, 8) if img.ptr == 8 else (4,):
        window = array.array("I" if size == 4 else "Q", data[start : limit - (limit - start) % size])
        if sys.byteorder != "little":
            window.byteswap()
        i = len(window) - 1
        while i > 0:
            j = i
            while j > 0 and 0 < window[j] - window[j - 1] <= MAX_MARKER_STEP:
                j -= 1
            if j < i - MIN_MARKERS + 2 and window[j] == 0:
                # Whatever follows the array may happen to continue the run.
                for extra in range(MAX_TRAILING + 1):
                    yield start + j * size, i - j + 1 - extra, size
            i = j - 1 if j < i else i - 1


MIN_MARKERS = 8  # 2048+ symbols: any kernel has tens of thousands
MAX_MARKER_STEP = 256 * 258  # 256 names of at most 2 + 256 bytes
MAX_TRAILING = 2


# ----------------------------------------------------------------- names


def _walk_names(data: bytes, start: int, count: int, limit: int):
    """Offsets (relative to START) of the first COUNT names, plus the end
    offset; None if the walk leaves [START, LIMIT)."""
    offsets = [0] * (count + 1)
    pos = start
    for i in range(count):
        offsets[i] = pos - start
        if pos >= limit:
            return None
        length = data[pos]
        if length & 0x80:
            length = (length & 0x7F) | (data[pos + 1] << 7)
            pos += 2
        else:
            pos += 1
        if length == 0:
            return None
        pos += length
    offsets[count] = pos - start
    return offsets if pos <= limit else None


def _find_names(img: KallsymsData, markers_at: int, markers: list[int], count_size: int):
    """(num_syms offset, names offset, N, name offsets) for the names that end
    at the markers array, whose markers[k] is the offset of name 256*k; the
    count is stored (aligned) right before the names."""
    data = img.data
    n_markers = len(markers)
    low, high = 256 * (n_markers - 1) + 1, 256 * n_markers
    # num_syms is right before the names: 4 bytes before them (7.0+, every
    # label 4-aligned) or the count padded to the pointer size.
    strides = sorted({_align(count_size, a) for a in img.alignments})
    # The last block of at most 256 names ends at the markers (give or take
    # alignment) and is at most MAX_MARKER_STEP bytes long.
    latest = markers_at - markers[-1]
    latest -= latest % 4
    for names_at in range(latest, max(latest - MAX_MARKER_STEP, strides[-1]) - 1, -4):
        for num_stride in strides:
            num_at = names_at - num_stride
            n = img.uint(num_at, count_size)
            if not low <= n <= high:
                continue
            offsets = _walk_names(data, names_at, n, markers_at)
            if offsets is None or not markers_at - img.ptr < names_at + offsets[n] <= markers_at:
                continue
            if all(offsets[256 * k] == markers[k] for k in range(n_markers)):
                return num_at, names_at, n, offsets
    return None


def _decode_names(data: bytes, names_at: int, offsets: list[int], tokens: list[str]) -> list[str]:
    names = []
    for i in range(len(offsets) - 1):
        pos = names_at + offsets[i]
        end = names_at + offsets[i + 1]
        pos += 2 if data[pos] & 0x80 else 1
        names.append("".join([tokens[b] for b in bytes(data[pos:end])]))
    return names


# ------------------------------------------------------------- addresses


def _relative_addresses(img: KallsymsData, offsets_at: int, base: int, n: int, absolute_percpu: bool):
    """(addresses, indices of absolute entries) of base-relative offsets."""
    raw = struct.unpack_from(f"<{n}i", img.data, offsets_at)
    mask = (1 << (8 * img.ptr)) - 1
    if absolute_percpu:
        # Non-negative entries are absolute (per-CPU symbols, linked at 0);
        # negative ones count down from relative_base - 1.
        addresses = [v if v >= 0 else (base - 1 - v) & mask for v in raw]
        return addresses, frozenset(i for i, v in enumerate(raw) if v >= 0)
    return [(base + (v & 0xFFFFFFFF)) & mask for v in raw], frozenset()


def _self_relative_addresses(img: KallsymsData, offsets_at: int, n: int) -> list[int]:
    """Addresses of 7.0+ offsets: each is the symbol's address minus its
    own entry's; the table lies in one segment, so entry i is at the
    table's address + 4 i."""
    raw = struct.unpack_from(f"<{n}i", img.data, offsets_at)
    mask = (1 << (8 * img.ptr)) - 1
    at = img.address(offsets_at)
    return [(at + 4 * i + v) & mask for i, v in enumerate(raw)]


def _sortedness(addresses: list[int]) -> float:
    if len(addresses) < 2:
        return 0.0
    good = sum(1 for a, b in zip(addresses, addresses[1:]) if a <= b)
    return good / (len(addresses) - 1)


def _is_kernel_pointer(img: KallsymsData, value: int) -> bool:
    return value >= 0xFFFF800000000000 if img.ptr == 8 else value >= 0xC0000000


@dataclass
class _Addresses:
    encoding: str
    tables: dict[str, int]  # label -> offset in the data
    addresses: list[int]
    absolute: frozenset[int] = frozenset()


def _address_candidates(img: KallsymsData, num_at: int, token_index_at: int, n: int):
    """Yield an _Addresses for each plausible place and encoding of the
    address tables: offsets + relative_base before num_syms (< 6.4) or
    after the token index (6.4+), self-relative offsets after the token
    index (7.0+), or absolute kallsyms_addresses before num_syms.  The
    relative-base ones come first: decoded as self-relative, 6.4+ offsets
    (small, increasing) would look sorted too, while a 7.0+ table is never
    followed by a kernel pointer (its seqs are 3-byte indices below 2^24)."""
    ptr = img.ptr
    offsets_size = _align(4 * n, ptr)
    places = []
    base_at = num_at - ptr
    places.append((base_at - offsets_size, base_at))
    after = _align(token_index_at + 512, ptr)
    places.append((after, after + offsets_size))
    for offsets_at, base_at in places:
        if offsets_at < 0 or base_at + ptr > len(img.data):
            continue
        base = img.uint(base_at, ptr)
        if not _is_kernel_pointer(img, base):
            continue
        for absolute_percpu in (True, False):
            addresses, absolute = _relative_addresses(img, offsets_at, base, n, absolute_percpu)
            tables = {"kallsyms_offsets": offsets_at, "kallsyms_relative_base": base_at}
            yield _Addresses("relative_base", tables, addresses, absolute)
    offsets_at = _align(token_index_at + 512, 4)
    if offsets_at + 4 * n <= len(img.data):
        addresses = _self_relative_addresses(img, offsets_at, n)
        yield _Addresses("self_relative", {"kallsyms_offsets": offsets_at}, addresses)
    addresses_at = num_at - _align(n * ptr, ptr)
    if addresses_at >= 0:
        fmt = "<%d%s" % (n, "Q" if ptr == 8 else "I")
        addresses = list(struct.unpack_from(fmt, img.data, addresses_at))
        yield _Addresses("absolute", {"kallsyms_addresses": addresses_at}, addresses)


def _text_address(elf: Elf) -> int | None:
    text = elf.section(".text")
    if text is not None:
        return text.addr
    loads = [s for s in elf.load_segments() if s.flags & 1]  # PF_X
    return loads[0].vaddr if loads else None


def _choose_addresses(img: KallsymsData, num_at: int, token_index_at: int, names: list[str], n: int):
    # _text (startup_64 on x86-64) is the first byte of the text section.
    text_index = next((i for i, name in enumerate(names) if name[1:] in ("_text", "startup_64")), None)
    if text_index is None:
        return None
    for found in _address_candidates(img, num_at, token_index_at, n):
        text = found.addresses[text_index]
        if img.text is not None:
            if text != img.text:
                continue
        elif found.encoding == "self_relative":
            # A position in the memory image: _text must be inside it.
            if not 0 <= text < len(img.data):
                continue
        elif not _is_kernel_pointer(img, text):
            continue
        if _sortedness(found.addresses) > 0.99:
            return found
    return None


# ------------------------------------------------------------------ seqs


def _find_seqs(img: KallsymsData, candidates: list[int], n: int) -> int | None:
    """Offset of kallsyms_seqs_of_names (3-byte big-endian symbol indices,
    a permutation of 0..N-1) among CANDIDATES, or None."""
    for at in candidates:
        raw = img.data[at : at + 3 * n]
        if len(raw) != 3 * n:
            continue
        seen = bytearray(n)
        ok = True
        for i in range(0, 3 * n, 3):
            index = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2]
            if index >= n or seen[index]:
                ok = False
                break
            seen[index] = 1
        if ok:
            return at
    return None


# ------------------------------------------------------------------ main


def read_kallsyms(elf: Elf) -> Kallsyms:
    """All symbols of the kernel ELF, decoded from its kallsyms tables."""
    return scan_kallsyms(KallsymsData.of_elf(elf))


def scan_kallsyms(img: KallsymsData) -> Kallsyms:
    """The kallsyms tables found in IMG's bytes, decoded (the first ones)."""
    for found in iter_kallsyms(img):
        return found
    raise KallsymsError(f"{img.name}: no kallsyms tables found (kernel built without CONFIG_KALLSYMS_ALL?)")


def iter_kallsyms(img: KallsymsData):
    """Every set of kallsyms tables in IMG's bytes, decoded, in the order of
    their token tables (a memory image may hold stale copies besides the
    running kernel's)."""
    for token_at, index_at, raw_tokens in _token_tables(img):
        tokens = [t.decode("latin-1") for t in raw_tokens]
        floor = max(0, token_at - (16 << 20))
        for markers_at, n_markers, count_size in _markers_before(img, token_at, floor):
            fmt = "<%d%s" % (n_markers, "I" if count_size == 4 else "Q")
            markers = list(struct.unpack_from(fmt, img.data, markers_at))
            found = _find_names(img, markers_at, markers, count_size)
            if found is None:
                continue
            num_at, names_at, n, offsets = found
            names = _decode_names(img.data, names_at, offsets, tokens)
            if any(not name for name in names):
                continue
            chosen = _choose_addresses(img, num_at, index_at, names, n)
            if chosen is None:
                continue
            address_tables, addresses = chosen.tables, chosen.addresses
            tables = {
                "kallsyms_num_syms": num_at,
                "kallsyms_names": names_at,
                "kallsyms_markers": markers_at,
                "kallsyms_token_table": token_at,
                "kallsyms_token_index": index_at,
                **address_tables,
            }
            markers_end = _align(markers_at + n_markers * count_size, img.ptr)
            seq_candidates = [markers_end]
            if "kallsyms_relative_base" in address_tables:
                seq_candidates.append(_align(address_tables["kallsyms_relative_base"] + img.ptr, img.ptr))
            elif chosen.encoding == "self_relative":
                seq_candidates.append(address_tables["kallsyms_offsets"] + 4 * n)
            seqs_at = _find_seqs(img, seq_candidates, n)
            if seqs_at is not None:
                tables["kallsyms_seqs_of_names"] = seqs_at
            symbols = [Symbol(name[1:], address, name[0]) for name, address in zip(names, addresses)]
            count_type = "unsigned int" if count_size == 4 else "unsigned long"
            token_bytes = sum(len(t) + 1 for t in raw_tokens)
            table_types = {
                "kallsyms_num_syms": count_type,
                "kallsyms_names": f"unsigned char[{offsets[n]}]",
                "kallsyms_markers": f"{count_type}[{n_markers}]",
                "kallsyms_token_table": f"char[{token_bytes}]",
                "kallsyms_token_index": "unsigned short[256]",
                "kallsyms_offsets": f"int[{n}]",
                "kallsyms_relative_base": "unsigned long",
                "kallsyms_addresses": f"unsigned long[{n}]",
                "kallsyms_seqs_of_names": f"unsigned char[{3 * n}]",
            }
            yield Kallsyms(
                symbols=symbols,
                tables={label: img.address(at) for label, at in tables.items()},
                table_types={label: table_types[label] for label in tables},
                encoding=chosen.encoding,
                absolute=chosen.absolute,
            )
            break  # one decoding per token table
