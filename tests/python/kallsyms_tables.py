"""Synthetic kallsyms tables, laid out as the kernel's scripts/kallsyms.c
writes them in each generation, and the pieces of a synthetic x86-64
kernel memory image around them (tests of pyrebox.symbols without a
kernel download).

Layouts (LAYOUTS):
  5.4      offsets relative_base num_syms names markers token_table
           token_index; labels 8-aligned; absolute per-CPU symbols;
           one-byte name lengths
  6.2      as 5.4 with kallsyms_seqs_of_names after the markers and
           two-byte lengths for names longer than 127
  6.4      num_syms names markers token_table token_index offsets
           relative_base seqs; absolute per-CPU symbols
  6.15     as 6.4, per-CPU symbols at ordinary addresses (offsets are
           unsigned from relative_base)
  7.0      as 6.15 without relative_base; labels 4-aligned; each offset is
           the symbol's address minus its own entry's
  absolute kallsyms_addresses (a pointer per symbol) num_syms names markers
           token_table token_index (kernels without base-relative tables)
"""

from __future__ import annotations

import random
import string
import struct
from dataclasses import dataclass

TEXT = 0xFFFFFFFF81000000  # _text's link-time address
LAYOUTS = ("5.4", "6.2", "6.4", "6.15", "7.0", "absolute")
FILLER = 3000  # functions: the markers need 2048+ symbols

# Tokens: every name character stands for itself, a few other codes stand
# for longer strings (tokens made of tokens, as the kernel's are).
NAME_CHARS = string.ascii_letters + string.digits + "_."
MULTI = {0x80: b"func_", 0x81: b"_text", 0x82: b"long_", 0x83: b"var"}


def token_table() -> list[bytes]:
    tokens = []
    for code in range(256):
        if chr(code) in NAME_CHARS:
            tokens.append(chr(code).encode())
        elif code in MULTI:
            tokens.append(MULTI[code])
        else:
            tokens.append(b"q" + bytes([ord("a") + code % 26]))  # unused pairs
    return tokens


def encode_name(text: bytes) -> bytes:
    """Token indices for TEXT (type letter + name), longest tokens first."""
    out, pos = [], 0
    while pos < len(text):
        for code, token in MULTI.items():
            if text.startswith(token, pos):
                out.append(code)
                pos += len(token)
                break
        else:
            out.append(text[pos])
            pos += 1
    return bytes(out)


@dataclass(frozen=True)
class Sym:
    name: str
    address: int
    type: str
    percpu: bool = False


def symbols(layout: str, extra: list[Sym] = ()) -> list[Sym]:
    """A sorted symbol table: per-CPU variables (linked at 0 when the
    layout has absolute per-CPU symbols), _text, functions, data."""
    absolute_percpu = layout in ("5.4", "6.2", "6.4")
    percpu_base = 0 if absolute_percpu else TEXT + 0x2400000
    syms = [Sym("__per_cpu_start", percpu_base, "A" if absolute_percpu else "D", True),
            Sym("fixed_percpu_data", percpu_base, "A" if absolute_percpu else "D", True),
            Sym("current_task", percpu_base + 0x1FB80, "A" if absolute_percpu else "D", True)]
    if not absolute_percpu:
        syms = []  # they sort after the text below
    syms.append(Sym("_text", TEXT, "T"))
    syms.append(Sym("startup_64", TEXT, "T"))
    for i in range(FILLER):
        syms.append(Sym(f"func_{i}", TEXT + 0x1000 + 0x10 * i, "t" if i % 3 else "T"))
    if layout != "5.4":  # two-byte name lengths are 6.1+
        syms.append(Sym("long_" * 30 + "end", TEXT + 0x1000 + 0x10 * FILLER, "t"))
    syms.extend(extra)
    if not absolute_percpu:
        syms.append(Sym("__per_cpu_start", percpu_base, "D", True))
        syms.append(Sym("current_task", percpu_base + 0x1FB80, "D", True))
    syms.append(Sym("init_task", TEXT + 0x2A1AA40, "D"))
    syms.append(Sym("var_end", TEXT + 0x3000000, "B"))
    return sorted(syms, key=lambda s: s.address)


@dataclass
class Tables:
    data: bytes
    offsets: dict[str, int]  # label -> offset in data
    symbols: list[Sym]


def _pad(blob: bytearray, alignment: int) -> None:
    blob.extend(b"\0" * (-len(blob) % alignment))


def build(layout: str, syms: list[Sym], at: int = 0, slide: int = 0) -> Tables:
    """The kallsyms tables of SYMS in LAYOUT, to be placed at link-time
    address AT (self-relative offsets depend on it); SLIDE is what KASLR
    added to relocated pointers (relative_base, kallsyms_addresses)."""
    align = 4 if layout == "7.0" else 8
    absolute_percpu = layout in ("5.4", "6.2", "6.4")
    n = len(syms)
    tokens = token_table()
    names, markers, pos = bytearray(), [], 0
    for i, sym in enumerate(syms):
        if i % 256 == 0:
            markers.append(len(names))
        encoded = encode_name(sym.type.encode() + sym.name.encode())
        if len(encoded) > 127:
            names += bytes([(len(encoded) & 0x7F) | 0x80, len(encoded) >> 7])
        else:
            names.append(len(encoded))
        names += encoded
    by_name = sorted(range(n), key=lambda i: (syms[i].name, syms[i].address, i))
    seqs = b"".join(i.to_bytes(3, "big") for i in by_name)
    token_bytes = b"".join(t + b"\0" for t in tokens)
    index = [0]
    for t in tokens[:-1]:
        index.append(index[-1] + len(t) + 1)
    base = next(s.address for s in syms if not (absolute_percpu and s.percpu))

    def offsets_blob(offsets_at: int) -> bytes:
        values = []
        for i, sym in enumerate(syms):
            if layout == "7.0":
                values.append(struct.pack("<i", sym.address - (at + offsets_at + 4 * i)))
            elif absolute_percpu and sym.percpu:
                values.append(struct.pack("<i", sym.address))
            elif absolute_percpu:
                values.append(struct.pack("<i", base - sym.address - 1))
            else:
                values.append(struct.pack("<I", sym.address - base))
        return b"".join(values)

    parts = {
        "kallsyms_num_syms": struct.pack("<I", n),
        "kallsyms_names": bytes(names),
        "kallsyms_markers": struct.pack(f"<{len(markers)}I", *markers),
        "kallsyms_seqs_of_names": seqs,
        "kallsyms_token_table": token_bytes,
        "kallsyms_token_index": struct.pack("<256H", *index),
        "kallsyms_offsets": None,  # filled once its place is known
        "kallsyms_relative_base": struct.pack("<Q", base + slide),
        "kallsyms_addresses": b"".join(
            struct.pack("<Q", s.address if s.percpu and absolute_percpu else s.address + slide) for s in syms),
    }
    order = {
        "5.4": ["kallsyms_offsets", "kallsyms_relative_base", "kallsyms_num_syms", "kallsyms_names",
                "kallsyms_markers", "kallsyms_token_table", "kallsyms_token_index"],
        "6.2": ["kallsyms_offsets", "kallsyms_relative_base", "kallsyms_num_syms", "kallsyms_names",
                "kallsyms_markers", "kallsyms_seqs_of_names", "kallsyms_token_table", "kallsyms_token_index"],
        "6.4": ["kallsyms_num_syms", "kallsyms_names", "kallsyms_markers", "kallsyms_token_table",
                "kallsyms_token_index", "kallsyms_offsets", "kallsyms_relative_base", "kallsyms_seqs_of_names"],
        "7.0": ["kallsyms_num_syms", "kallsyms_names", "kallsyms_markers", "kallsyms_token_table",
                "kallsyms_token_index", "kallsyms_offsets", "kallsyms_seqs_of_names"],
        "absolute": ["kallsyms_addresses", "kallsyms_num_syms", "kallsyms_names", "kallsyms_markers",
                     "kallsyms_token_table", "kallsyms_token_index"],
    }
    order["6.15"] = order["6.4"]
    blob, where = bytearray(), {}
    for label in order[layout]:
        _pad(blob, align)
        where[label] = len(blob)
        blob += parts[label] if label != "kallsyms_offsets" else offsets_blob(len(blob))
    _pad(blob, align)
    return Tables(bytes(blob), where, syms)


def junk(size: int, seed: int = 1) -> bytes:
    """Bytes that are no kallsyms table (text-like, no NUL runs)."""
    rng = random.Random(seed)
    return bytes(rng.randrange(1, 256) for _ in range(size))


# ----------------------------------------------------------- memory images

BANNER = b"Linux version 7.0.0-synthetic (builder@example) (gcc 14) #1 SMP PREEMPT_DYNAMIC\n"
# Offsets from _text of the pieces of the synthetic kernel image.
BANNER_AT = 0x100000
BTF_AT = 0x200004  # not 8-aligned, like the 6.12 kernel's __start_BTF
BOOT_PARAMS_AT = 0x300000
TABLES_AT = 0x400000
END_AT = 0x800000
LOAD_PHYSICAL_ADDR = 0x1000000


def tiny_btf() -> bytes:
    """A valid BTF blob with one type (int)."""
    strings = b"\0int\0"
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)  # INT, signed, 32 bits
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def boot_params(pref_address: int = LOAD_PHYSICAL_ADDR, alignment: int = 0x200000) -> bytes:
    params = bytearray(0x1000)
    params[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", params, 0x206, 0x20F)
    struct.pack_into("<I", params, 0x230, alignment)
    struct.pack_into("<Q", params, 0x258, pref_address)
    return bytes(params)


def kernel_symbols(layout: str) -> list[Sym]:
    return symbols(layout, [
        Sym("linux_banner", TEXT + BANNER_AT, "D"),
        Sym("__start_BTF", TEXT + BTF_AT, "R"),
        Sym("boot_params", TEXT + BOOT_PARAMS_AT, "B"),
        Sym("_end", TEXT + END_AT, "B"),
    ])


def memory_image(layout: str, text_at: int, slide: int, size: int = 16 << 20, btf: bytes | None = None,
                 params: bytes | None = None, stale_at: int | None = None) -> tuple[bytes, Tables]:
    """A physical memory image holding a synthetic kernel whose _text is at
    TEXT_AT, run with KASLR's virtual SLIDE; with STALE_AT, a copy of its
    kallsyms tables alone there too (as free memory may hold)."""
    syms = kernel_symbols(layout)
    tables = build(layout, syms, at=TEXT + TABLES_AT, slide=slide)
    image = bytearray(size)
    image[0x1000:0x1000 + 4096] = junk(4096)
    for offset, piece in ((BANNER_AT, BANNER + b"\0"), (BTF_AT, tiny_btf() if btf is None else btf),
                          (BOOT_PARAMS_AT, boot_params() if params is None else params),
                          (TABLES_AT, tables.data)):
        image[text_at + offset : text_at + offset + len(piece)] = piece
    if stale_at is not None:
        image[stale_at : stale_at + len(tables.data)] = tables.data
    return bytes(image), tables
