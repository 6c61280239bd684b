"""The kallsyms scanner on synthetic tables of every layout from 5.4 to 7.x
(tests/python/kallsyms_tables.py builds them as scripts/kallsyms.c does),
in a kernel image and in a memory image of a running kernel with KASLR;
the messages for memory images without a kernel, without BTF, or with a
corrupt one.  No kernel download, no guest."""

from __future__ import annotations

import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import kallsyms_tables as kt  # noqa: E402
from conftest import run_pyrebox  # noqa: E402
from pyrebox.symbols import memory_image  # noqa: E402
from pyrebox.symbols.btf import BtfError  # noqa: E402
from pyrebox.symbols.kallsyms import KallsymsData, KallsymsError, scan_kallsyms  # noqa: E402

RODATA = kt.TEXT + 0x1200000  # where the synthetic rodata is linked
PREFIX = 0x1000  # junk before the tables


def expected(syms):
    return [(s.name, s.address, s.type) for s in syms]


def decoded(kallsyms):
    return [(s.name, s.address, s.type) for s in kallsyms.symbols]


def in_elf(layout: str):
    """(KallsymsData as from a kernel ELF whose rodata holds the tables, Tables)."""
    syms = kt.symbols(layout)
    tables = kt.build(layout, syms, at=RODATA + PREFIX)
    data = kt.junk(PREFIX) + tables.data + kt.junk(PREFIX, seed=2)
    return KallsymsData(data, "vmlinux", 8, lambda offset: RODATA + offset, kt.TEXT), tables


ENCODINGS = {"5.4": "relative_base", "6.2": "relative_base", "6.4": "relative_base",
             "6.15": "relative_base", "7.0": "self_relative", "absolute": "absolute"}


@pytest.mark.parametrize("layout", kt.LAYOUTS)
def test_every_layout_is_decoded(layout):
    data, tables = in_elf(layout)
    kallsyms = scan_kallsyms(data)
    assert decoded(kallsyms) == expected(tables.symbols)
    assert kallsyms.encoding == ENCODINGS[layout]
    assert kallsyms.tables == {label: RODATA + PREFIX + offset for label, offset in tables.offsets.items()}
    n = len(tables.symbols)
    assert kallsyms.table_types["kallsyms_offsets" if layout != "absolute" else "kallsyms_addresses"] \
        in (f"int[{n}]", f"unsigned long[{n}]")
    assert kallsyms.table_types["kallsyms_num_syms"] == "unsigned int"
    # Absolute per-CPU entries are the layouts' that have them.
    percpu = {i for i, s in enumerate(tables.symbols) if s.percpu}
    assert kallsyms.absolute == (percpu if layout in ("5.4", "6.2", "6.4") else set())


def test_7x_labels_need_not_be_8_aligned():
    # 7.0's `.balign 4`: num_syms 4 bytes before the names, tables at
    # addresses that are 4 mod 8.
    data, tables = in_elf("7.0")
    assert tables.offsets["kallsyms_names"] == tables.offsets["kallsyms_num_syms"] + 4
    assert any(offset % 8 == 4 for offset in tables.offsets.values())
    assert decoded(scan_kallsyms(data)) == expected(tables.symbols)


def test_tables_that_do_not_fit_the_text_are_refused():
    data, _ = in_elf("7.0")
    wrong = KallsymsData(data.data, "vmlinux", 8, lambda offset: RODATA + offset, kt.TEXT + 0x200000)
    with pytest.raises(KallsymsError, match="no kallsyms tables found"):
        scan_kallsyms(wrong)


# ------------------------------------------------------------ memory images

TEXT_AT = 0x600000  # where the synthetic kernel starts in "physical memory"
SLIDE = 0x2C000000  # KASLR's virtual offset of that run


@pytest.mark.parametrize("slide", [SLIDE, 0], ids=["kaslr", "nokaslr"])
@pytest.mark.parametrize("layout", ["5.4", "6.2", "6.4", "6.15", "7.0"])
def test_memory_image_gives_link_time_addresses(layout, slide):
    image, tables = kt.memory_image(layout, TEXT_AT, slide)
    kernel = memory_image.find_kernel(image, "guest.mem")
    assert decoded(kernel.kallsyms) == expected(tables.symbols)
    assert kernel.base + kernel.text_at == TEXT_AT
    assert kernel.link_text == kt.TEXT
    assert kernel.btf_bytes() == kt.tiny_btf()
    assert kernel.kallsyms.tables == {
        label: kt.TEXT + kt.TABLES_AT + offset for label, offset in tables.offsets.items()}
    assert kernel.read_cstring(kt.TEXT + kt.BANNER_AT) == kt.BANNER


@pytest.mark.parametrize("layout", ["6.4", "7.0"])
def test_memory_image_offsets_are_the_images(layout):
    # A kernel far into a large image: the window read around its BTF blob
    # (whose offset is 4 mod 8) keeps the tables' alignments, and offsets
    # (messages, base) in the image's terms.
    at = 300 << 20
    image, tables = kt.memory_image(layout, at, SLIDE, size=(400 << 20))
    kernel = memory_image.find_kernel(image, "guest.mem")
    assert kernel.base + kernel.text_at == at
    assert kernel.base + kernel.btf_blob.offset == at + kt.BTF_AT
    assert decoded(kernel.kallsyms) == expected(tables.symbols)


@pytest.mark.parametrize("layout", ["6.4", "7.0"])
def test_a_stale_copy_of_the_tables_before_the_kernel_is_passed_over(layout):
    image, tables = kt.memory_image(layout, TEXT_AT, SLIDE, stale_at=0x100000)
    kernel = memory_image.find_kernel(image, "guest.mem")
    assert decoded(kernel.kallsyms) == expected(tables.symbols)
    assert kernel.kallsyms.tables == {
        label: kt.TEXT + kt.TABLES_AT + offset for label, offset in tables.offsets.items()}


def test_a_slide_that_is_not_the_kernels_alignment_is_an_error():
    image, _ = kt.memory_image("6.15", TEXT_AT, SLIDE + 0x1000)
    with pytest.raises(KallsymsError, match="alignment 0x200000"):
        memory_image.find_kernel(image, "guest.mem")


def test_no_boot_header_is_an_error():
    image, _ = kt.memory_image("7.0", TEXT_AT, SLIDE, params=bytes(0x1000))
    with pytest.raises(KallsymsError, match=r"no boot header \(HdrS\) in boot_params at offset 0x900000"):
        memory_image.find_kernel(image, "guest.mem")


# ----------------------------------------------------------------- bad input

def one_line_error(tmp_path, data: bytes | None = None, *, path=None) -> str:
    if path is None:
        path = tmp_path / "guest.mem"
        path.write_bytes(data)
    result = run_pyrebox("symbols", str(path), "-o", str(tmp_path / "out.json"))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not (tmp_path / "out.json").exists()
    assert lines[0].startswith(f"pyrebox symbols: {path}: ")
    return lines[0]


def test_an_image_without_a_kernel_says_so(tmp_path):
    # Larger than any kernel file: read as a memory image only.
    path = tmp_path / "zeros.mem"
    with open(path, "wb") as f:
        f.truncate(300 << 20)
    assert one_line_error(tmp_path, path=path).endswith(
        "no Linux kernel in this memory image (no \"Linux version\" banner)")


def test_a_small_file_without_a_kernel_says_both(tmp_path):
    line = one_line_error(tmp_path, kt.junk(1 << 20))
    assert "not a Linux kernel image" in line and "nor a memory image of a running Linux" in line


def test_a_kernel_without_btf_needs_its_debug_package(tmp_path):
    image, _ = kt.memory_image("7.0", TEXT_AT, SLIDE, btf=b"\0" * 64)
    line = one_line_error(tmp_path, image)
    assert "no BTF blob in the memory image" in line and "CONFIG_DEBUG_INFO_BTF" in line
    # The release is the banner's.
    assert line.endswith("its symbol table must be made from the vmlinux of its debug package "
                         "(Debian: linux-image-7.0.0-synthetic-dbg), with `pyrebox symbols "
                         "/usr/lib/debug/boot/vmlinux-7.0.0-synthetic -o kernel.isf.json.xz`")


def test_a_btf_header_that_does_not_fit_is_named(tmp_path):
    btf = bytearray(kt.tiny_btf())
    struct.pack_into("<I", btf, 20, 64 << 20)  # str_len: past the end of the image
    image, _ = kt.memory_image("7.0", TEXT_AT, SLIDE, btf=bytes(btf))
    line = one_line_error(tmp_path, image)
    assert line.endswith(f"the BTF blob at offset {TEXT_AT + kt.BTF_AT:#x} is corrupt: the blob "
                         f"({24 + 16 + (64 << 20)} bytes) runs past the end of the image")


def test_a_corrupt_btf_blob_is_named_with_libbpfs_reason(tmp_path):
    btf = bytearray(kt.tiny_btf())
    struct.pack_into("<I", btf, 24 + 4, 31 << 24)  # the int's kind: 31, no such kind
    image, _ = kt.memory_image("7.0", TEXT_AT, SLIDE, btf=bytes(btf))
    line = one_line_error(tmp_path, image)
    assert line.endswith(f"the BTF blob at offset {TEXT_AT + kt.BTF_AT:#x} is corrupt: "
                         "libbpf: Unsupported BTF_KIND:31 (Invalid argument)")


def test_memory_btf_errors_are_btf_errors():
    image, _ = kt.memory_image("7.0", TEXT_AT, SLIDE, btf=b"\0" * 64)
    with pytest.raises(BtfError):
        memory_image.find_kernel(image, "guest.mem")


# --------------------------------------------- guest memory through a callable

def test_physical_memory_reads_only_ram_and_holes_are_zeros():
    image = bytes(range(256)) * 64  # 16 KiB
    calls = []

    def read_phys(address, size):
        calls.append((address, size))
        return image[address:address + size]

    memory = memory_image.PhysicalMemory(read_phys, len(image), ranges=[(0, 0x1000), (0x2000, 0x3000)])
    assert len(memory) == len(image)
    assert memory[0xF00:0x2100] == image[0xF00:0x1000] + bytes(0x1000) + image[0x2000:0x2100]
    assert calls == [(0xF00, 0x100), (0x2000, 0x100)]
    assert memory[0x3800:0x3900] == bytes(0x100) and len(calls) == 2  # a hole: no call
    with pytest.raises(TypeError):
        memory[5]


@pytest.mark.parametrize("layout", ["6.4", "7.0"])
def test_generate_from_memory_reads_through_the_callable(layout):
    image, tables = kt.memory_image(layout, TEXT_AT, SLIDE)
    ram = [(0, 0xA0000), (0x100000, len(image))]
    calls = []

    def read_phys(address, size):
        calls.append((address, size))
        return image[address:address + size]

    kernel = memory_image.find_kernel(memory_image.PhysicalMemory(read_phys, len(image), ram), "guest")
    assert decoded(kernel.kallsyms) == expected(tables.symbols)
    assert kernel.base + kernel.text_at == TEXT_AT
    assert all(any(a <= address and address + size <= b for a, b in ram) for address, size in calls)
    assert max(size for _, size in calls) <= memory_image.SCAN_CHUNK


def test_generate_from_memory_says_when_there_is_no_kernel():
    from pyrebox.symbols import NoKernelError, generate_from_memory
    with pytest.raises(NoKernelError, match=r"^guest memory: no Linux kernel in this memory image"):
        generate_from_memory(lambda address, size: bytes(size), 4 << 20)
