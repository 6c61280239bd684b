"""`pyrebox symbols` on hostile input: malformed ELF headers, BTF blobs and
compressed payloads that unpack to far more than any kernel.  Each gives one
message (KernelImageError, printed by the command as one line, exit status
2), never a traceback, and no more memory than the caps allow.

The inputs are built here, small; no kernel download is needed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct

import pytest

from conftest import run_pyrebox
from pyrebox.symbols import btf as btf_module
from pyrebox.symbols import cli, kernel_image
from pyrebox.symbols.btf import PTR, Btf, BtfError
from pyrebox.symbols.kernel_image import (ELF_MAGIC, LZ4_LEGACY_MAGIC, MAX_KERNEL_ELF, Elf, KernelImageError,
                                          extract_elf)

# ------------------------------------------------------------------- ELF

SHT_PROGBITS, SHT_STRTAB = 1, 3
# Offsets of e_shoff, e_phoff, e_shentsize, e_shnum, e_shstrndx (64-bit).
E_PHOFF, E_SHOFF, E_SHENTSIZE, E_SHNUM, E_SHSTRNDX = 0x20, 0x28, 0x3A, 0x3C, 0x3E
SH_OFFSET, SH_SIZE = 0x18, 0x20  # in a section header


def make_elf(sections: dict[str, bytes]) -> bytes:
    """A 64-bit little-endian ELF file: the file header, one PT_LOAD, the
    SECTIONS' data, the section name table, then the section headers
    (a null one, SECTIONS in order, .shstrtab last)."""
    names = [""] + list(sections) + [".shstrtab"]
    shstrtab = b"\0" + b"".join(n.encode() + b"\0" for n in names[1:])
    data = bytearray(64 + 56)
    placed = [(0, 0, 0, 0)]  # (name offset, type, offset, size)
    for name, body in [*sections.items(), (".shstrtab", shstrtab)]:
        kind = SHT_STRTAB if name == ".shstrtab" else SHT_PROGBITS
        placed.append((shstrtab.index(b"\0" + name.encode() + b"\0") + 1, kind, len(data), len(body)))
        data += body
    data += b"\0" * (-len(data) % 8)
    shoff = len(data)
    for name_offset, kind, offset, size in placed:
        data += struct.pack("<IIQQQQIIQQ", name_offset, kind, 0, 0, offset, size, 0, 0, 1, 0)
    data[:4] = ELF_MAGIC
    data[4:7] = bytes([2, 1, 1])  # 64-bit, little-endian, version 1
    struct.pack_into("<HHIQQQIHHHHHH", data, 0x10, 2, 62, 1, 0xFFFFFFFF81000000, 64, shoff, 0, 64, 56, 1, 64,
                     len(placed), len(placed) - 1)
    struct.pack_into("<IIQQQQQQ", data, 64, 1, 5, 0, 0xFFFFFFFF81000000, 0x1000000, shoff, shoff, 0x200000)
    return bytes(data)


def section_header(elf: bytes, index: int) -> int:
    (shoff,) = struct.unpack_from("<Q", elf, E_SHOFF)
    return shoff + 64 * index


def patched(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


ELF = make_elf({".text": b"\xc3" * 64, ".BTF": b"\0" * 32})
SIZE = len(ELF)
SHSTRTAB = section_header(ELF, 3)
NAMES_OFFSET, NAMES_SIZE = struct.unpack_from("<QQ", ELF, SHSTRTAB + SH_OFFSET)


def test_the_crafted_elf_is_read():
    elf = Elf(ELF, "k")
    assert [s.name for s in elf.sections] == ["", ".text", ".BTF", ".shstrtab"]
    assert elf.section_data(".text") == b"\xc3" * 64


# (what is broken, the file, the message after "k: ")
CORRUPT_ELF = [
    ("section names past the end", patched(ELF, SHSTRTAB + SH_OFFSET, "<Q", SIZE + 100),
     f"corrupt ELF file: the section name table ({NAMES_SIZE} bytes at offset {SIZE + 100:#x}) is not in "
     f"the file ({SIZE} bytes)"),
    ("section names run past the end", patched(ELF, SHSTRTAB + SH_SIZE, "<Q", 1 << 40),
     f"corrupt ELF file: the section name table ({1 << 40} bytes at offset {NAMES_OFFSET:#x}) is not in the "
     f"file ({SIZE} bytes)"),
    ("section name offset past the table", patched(ELF, section_header(ELF, 1), "<I", 1000),
     f"corrupt ELF file: the name of section 1 (at 0x3e8 in the section name table, {NAMES_SIZE} bytes) has "
     "no end in it"),
    ("name table index past the headers", patched(ELF, E_SHSTRNDX, "<H", 9),
     "corrupt ELF header: the section name table is section 9, of 4"),
    ("too many section headers", patched(ELF, E_SHNUM, "<H", 0xFFFF),
     f"corrupt ELF header: the section header table (65535 entries of 64 bytes at offset "
     f"{section_header(ELF, 0):#x}) runs past the end of the file ({SIZE} bytes)"),
    ("section headers too small", patched(ELF, E_SHENTSIZE, "<H", 8),
     "corrupt ELF header: section header entries of 8 bytes (a 64-bit one has 64)"),
    ("section headers past the end", patched(ELF, E_SHOFF, "<Q", 1 << 63),
     f"corrupt ELF header: the section header table (4 entries of 64 bytes at offset {1 << 63:#x}) runs past "
     f"the end of the file ({SIZE} bytes)"),
    ("program headers past the end", patched(ELF, E_PHOFF, "<Q", SIZE - 8),
     f"corrupt ELF header: the program header table (1 entries of 56 bytes at offset {SIZE - 8:#x}) runs "
     f"past the end of the file ({SIZE} bytes)"),
    ("truncated header", ELF[:60], "truncated ELF header (60 bytes, a 64-bit one has 64)"),
]


@pytest.mark.parametrize("data, message", [c[1:] for c in CORRUPT_ELF], ids=[c[0] for c in CORRUPT_ELF])
def test_corrupt_elf_headers_give_one_message(data, message):
    with pytest.raises(KernelImageError) as raised:
        Elf(data, "k")
    assert str(raised.value) == f"k: {message}"


def test_a_section_past_the_end_of_the_file_is_refused():
    elf = Elf(patched(ELF, section_header(ELF, 2) + SH_SIZE, "<Q", 1 << 30), "k")
    with pytest.raises(KernelImageError) as raised:
        elf.section_data(".BTF")
    (offset,) = struct.unpack_from("<Q", ELF, section_header(ELF, 2) + SH_OFFSET)
    assert str(raised.value) == (f"k: corrupt ELF file: section .BTF ({1 << 30} bytes at offset {offset:#x}) "
                                 f"runs past the end of the file ({SIZE} bytes)")


def test_random_header_damage_gives_kernel_image_errors_only():
    rng = random.Random(7)
    header_bytes = list(range(0x18, 64)) + list(range(section_header(ELF, 0), SIZE))
    for _ in range(2000):
        data = bytearray(ELF)
        for _ in range(rng.randrange(1, 4)):
            data[rng.choice(header_bytes)] = rng.randrange(256)
        try:
            elf = Elf(bytes(data), "k")
            for section in elf.sections:
                elf.section_data(section.name)
        except KernelImageError:
            pass


def run_cli(capsys, path, out) -> tuple[int, list[str]]:
    status = cli.main([str(path), "-o", str(out)])
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err.splitlines()


def test_the_command_gives_one_line_for_section_names_past_the_end(tmp_path):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(CORRUPT_ELF[0][1])
    out = tmp_path / "out.json"
    result = run_pyrebox("symbols", str(kernel), "-o", str(out))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"pyrebox symbols: {kernel}: {CORRUPT_ELF[0][2]}"]
    assert not out.exists()


def test_the_command_gives_one_line_for_a_btf_section_past_the_end(tmp_path, capsys):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(patched(ELF, section_header(ELF, 2) + SH_SIZE, "<Q", 1 << 30))
    status, lines = run_cli(capsys, kernel, tmp_path / "out.json")
    (offset,) = struct.unpack_from("<Q", ELF, section_header(ELF, 2) + SH_OFFSET)
    assert status == 2
    assert lines == [f"pyrebox symbols: {kernel}: corrupt ELF file: section .BTF ({1 << 30} bytes at offset "
                     f"{offset:#x}) runs past the end of the file ({SIZE} bytes)"]


def test_the_command_turns_an_unforeseen_parse_error_into_one_line(tmp_path, capsys, monkeypatch):
    def broken(path, types_from="auto"):
        struct.unpack_from("<I", b"", 0)

    monkeypatch.setattr(cli, "generate", broken)
    status, lines = run_cli(capsys, tmp_path / "k", tmp_path / "out.json")
    assert status == 2
    assert lines == [f"pyrebox symbols: {tmp_path / 'k'}: malformed input (error: unpack_from requires a "
                     "buffer of at least 4 bytes for unpacking 4 bytes at offset 0 (actual buffer size is 0)): "
                     "not a kernel or memory image this can read"]


# ------------------------------------------------------------------- BTF


def btf_blob(pointers: int) -> bytes:
    """A BTF blob of POINTERS types, each a pointer to void."""
    types = b"".join(struct.pack("<III", 0, PTR << 24, 0) for _ in range(pointers))
    strings = b"\0"
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_a_btf_blob_with_more_types_than_the_cap_is_refused():
    assert Btf(btf_blob(5), "k", max_types=5).type_count == 6
    with pytest.raises(BtfError) as raised:
        Btf(btf_blob(5), "k", max_types=4)
    assert str(raised.value) == ("k: the .BTF section has 5 types, more than the 4 a kernel's BTF may have "
                                 "(a Debian kernel's has about 120,000): not a kernel's BTF")
    assert btf_module.MAX_BTF_TYPES == 1 << 20


def test_a_btf_blob_over_the_size_cap_is_refused_before_parsing():
    message = ("k: the .BTF section is {} bytes, more than the {} MiB a kernel's BTF may be (a Debian "
               "kernel's is about 5 MB): not a kernel's BTF")
    with pytest.raises(BtfError) as raised:
        Btf(b"\0" * ((1 << 20) + 1), "k", max_size=1 << 20)
    assert str(raised.value) == message.format((1 << 20) + 1, 1)
    # The real cap, 64 MiB.
    with pytest.raises(BtfError) as raised:
        Btf(bytes((64 << 20) + 1), "k")
    assert str(raised.value) == message.format((64 << 20) + 1, 64)


def test_btf_header_lengths_past_the_blob_are_libbpf_errors():
    blob = bytearray(btf_blob(2))
    struct.pack_into("<I", blob, 12, 1 << 20)  # type_len
    with pytest.raises(BtfError) as raised:
        Btf(bytes(blob), "k")
    assert str(raised.value).startswith("k: the .BTF section is corrupt: libbpf: ")
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------- decompression


def _lz4_legacy(data: bytes) -> bytes:
    import lz4.block

    out = [LZ4_LEGACY_MAGIC]
    for at in range(0, len(data), 8 << 20):
        packed = lz4.block.compress(data[at:at + (8 << 20)], store_size=False)
        out.append(struct.pack("<I", len(packed)) + packed)
    return b"".join(out)


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


COMPRESSORS = {
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
    "gzip": lambda d: gzip.compress(d, mtime=0),
    "zstd": _zstd,
    "lz4": _lz4_legacy,
    "bzip2": bz2.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
}
JUNK = b"\x01" * 1000
CAP = 1 << 20


def bomb_message(kind: str, at: int, cap: str = "1 MiB") -> str:
    return (f"k: the {kind} stream at offset {at:#x} unpacks to more than {cap}, the most a kernel may be "
            "(a Debian vmlinux is 60-70 MB): not a kernel image")


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_a_compressed_payload_over_the_cap_is_refused(kind):
    # An ELF header, then zeros: past the cap by a block of lz4.
    bomb = COMPRESSORS[kind](ELF_MAGIC + bytes(CAP + (8 << 20)))
    with pytest.raises(KernelImageError) as raised:
        extract_elf(JUNK + bomb + struct.pack("<I", 0), "k", max_size=CAP)
    assert str(raised.value) == bomb_message(kind, len(JUNK))


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_a_compressed_payload_up_to_the_cap_unpacks(kind):
    elf = ELF_MAGIC + bytes(CAP - 4)
    assert extract_elf(JUNK + COMPRESSORS[kind](elf) + struct.pack("<I", len(elf)), "k", max_size=CAP) == elf


def bzimage(payload: bytes) -> tuple[bytes, int]:
    """An x86 boot image (boot protocol 2.15) whose header names PAYLOAD,
    and the payload's offset."""
    setup = bytearray(5 * 512)
    setup[0x1F1] = 4  # setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    struct.pack_into("<II", setup, 0x248, 0x100, len(payload))
    return bytes(setup) + bytes(0x100) + payload, len(setup) + 0x100


def test_a_bzimage_payload_over_the_cap_is_refused():
    image, at = bzimage(COMPRESSORS["xz"](ELF_MAGIC + bytes(2 * CAP)))
    with pytest.raises(KernelImageError) as raised:
        extract_elf(image, "k", max_size=CAP)
    assert str(raised.value) == bomb_message("xz", at)


def test_the_default_cap_is_512_mib_and_is_what_is_unpacked(monkeypatch):
    """The real cap, without unpacking 512 MiB: a stand-in decompressor
    says what it was asked for and answers with a stand-in for more."""
    assert MAX_KERNEL_ELF == 512 << 20
    asked = []

    class Unpacked(bytes):
        def __len__(self):
            return asked[-1]

    def decompress(data, limit):
        asked.append(limit)
        return ELF_MAGIC if limit == len(ELF_MAGIC) else Unpacked(ELF_MAGIC)

    monkeypatch.setattr(kernel_image, "COMPRESSIONS", ((b"\xfd7zXZ\x00", "xz", decompress),))
    with pytest.raises(KernelImageError) as raised:
        extract_elf(JUNK + b"\xfd7zXZ\x00", "k")
    assert asked == [4, MAX_KERNEL_ELF + 1]
    assert str(raised.value) == bomb_message("xz", len(JUNK), "512 MiB")


def test_the_command_gives_one_line_for_a_bomb(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(kernel_image, "MAX_KERNEL_ELF", CAP)
    monkeypatch.setattr(kernel_image.extract_elf, "__defaults__", (CAP,))
    kernel = tmp_path / "vmlinuz"
    image, at = bzimage(COMPRESSORS["xz"](ELF_MAGIC + bytes(2 * CAP)))
    kernel.write_bytes(image)
    status, lines = run_cli(capsys, kernel, tmp_path / "out.json")
    assert status == 2
    assert lines == ["pyrebox symbols: " + bomb_message("xz", at).replace("k:", f"{kernel}:", 1)]
