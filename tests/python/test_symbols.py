"""`pyrebox symbols`: a Volatility 3 ISF from the default guest's own kernel
image (types from .BTF through libbpf, addresses from kallsyms), loaded by
Volatility 3 itself.

The ISF is generated once per module (a couple of seconds); the facts below
are the Debian 6.1 kernel's (DESIGN.md section 3).
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from conftest import built_release, run_pyrebox
from pyrebox import paths
from pyrebox.symbols import extract_elf, load_kernel, read_kallsyms, write_isf
from pyrebox.symbols.kernel_image import LZ4_LEGACY_MAGIC

pytestmark = pytest.mark.built_guest

# task_struct member offsets of the Debian 6.1 kernel (DESIGN.md section 3).
TASK_STRUCT_OFFSETS = {"tasks": 2192, "mm": 2272, "pid": 2416, "comm": 2976}


@pytest.fixture(scope="module")
def kernel() -> str:
    return paths.require(paths.GUEST_KERNEL, "the default guest's kernel")


@pytest.fixture(scope="module")
def elf(kernel):
    return load_kernel(kernel)


@pytest.fixture(scope="module")
def kallsyms(elf):
    return read_kallsyms(elf)


@pytest.fixture(scope="module")
def generated(kernel, tmp_path_factory):
    """(completed `pyrebox symbols` run, ISF path, ISF dict, seconds)."""
    out = tmp_path_factory.mktemp("isf") / "kernel.isf.json.xz"
    started = time.monotonic()
    result = run_pyrebox("symbols", kernel, "-o", str(out))
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    isf = json.loads(lzma.decompress(out.read_bytes()))
    return result, out, isf, seconds


@pytest.fixture(scope="module")
def volatility_table(generated):
    """The ISF as a Volatility 3 symbol table, loaded the documented way."""
    from volatility3.framework import contexts
    from volatility3.framework.symbols import intermed

    _, out, _, _ = generated
    context = contexts.Context()
    # An absolute sub_path makes Volatility look in that folder only.
    name = intermed.IntermediateSymbolTable.create(
        context, "pyrebox_test", str(out.parent), "kernel.isf"
    )
    return context.symbol_space[name]


def section_range(elf, name):
    section = elf.section(name)
    assert section is not None, name
    return range(section.addr, section.addr + section.size)


# ---------------------------------------------------------------- the command


def test_cli_reports_types_and_symbols(generated):
    result, _, isf, seconds = generated
    line = result.stdout.strip()
    assert "\n" not in line
    match = re.search(r"(\d+) types \((\d+) BTF types\), (\d+) symbols", line)
    assert match, line
    assert int(match.group(1)) == len(isf["user_types"])
    assert int(match.group(3)) == len(isf["symbols"])
    assert seconds < 60, f"generation took {seconds:.1f}s"


def test_isf_metadata_and_base_types(generated):
    _, _, isf, _ = generated
    assert isf["metadata"]["format"] == "6.2.0"
    assert isf["metadata"]["producer"]["name"] == "pyrebox"
    assert re.fullmatch(r"\d+\.\d+\.\d+", isf["metadata"]["producer"]["version"])
    base = isf["base_types"]
    assert base["pointer"] == {"kind": "int", "size": 8, "signed": False, "endian": "little"}
    assert base["char"]["size"] == 1 and base["char"]["kind"] == "char"
    assert base["int"] == {"kind": "int", "size": 4, "signed": True, "endian": "little"}
    assert base["unsigned int"]["signed"] is False
    for name in ("long", "long int"):
        assert base[name] == {"kind": "int", "size": 8, "signed": True, "endian": "little"}
    for name in ("unsigned long", "long unsigned int"):
        assert base[name] == {"kind": "int", "size": 8, "signed": False, "endian": "little"}


def test_btf_types_are_all_there(generated):
    result, _, isf, _ = generated
    btf_types = int(re.search(r"\((\d+) BTF types\)", result.stdout).group(1))
    assert 90_000 < btf_types < 130_000  # 100,751 for 6.1.0-56-amd64
    assert len(isf["user_types"]) > 5000 and len(isf["enums"]) > 1000
    pid_type = isf["enums"]["pid_type"]
    assert pid_type["constants"]["PIDTYPE_PID"] == 0 and pid_type["base"] in isf["base_types"]


def test_type_descriptors_follow_dwarf2json(generated):
    _, _, isf, _ = generated
    types = isf["user_types"]
    task = types["task_struct"]
    assert task["kind"] == "struct"
    # Typedefs resolved, pointers with subtypes, arrays with counts.
    assert task["fields"]["comm"]["type"] == {
        "kind": "array", "count": 16, "subtype": {"kind": "base", "name": "char"}}
    assert task["fields"]["mm"]["type"] == {
        "kind": "pointer", "subtype": {"kind": "struct", "name": "mm_struct"}}
    assert task["fields"]["pid"]["type"] == {"kind": "base", "name": "int"}  # pid_t
    # Bitfields.
    field = task["fields"]["sched_reset_on_fork"]["type"]
    assert field["kind"] == "bitfield" and field["bit_length"] == 1
    assert field["type"] == {"kind": "base", "name": "unsigned int"}
    # Function pointers; flexible arrays; anonymous members.
    ops = types["file_operations"]["fields"]["read"]["type"]
    assert ops == {"kind": "pointer", "subtype": {"kind": "function"}}
    assert types["mm_struct"]["fields"]["cpu_bitmap"]["type"]["count"] == 0
    anonymous = [f for f in types["mm_struct"]["fields"].values() if f.get("anonymous")]
    assert anonymous and types[anonymous[0]["type"]["name"]]["fields"]["pgd"]


def test_error_when_the_file_is_not_a_kernel(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a kernel\n" * 100)
    result = run_pyrebox("symbols", str(text), "-o", str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(text) in lines[0] and "not a Linux kernel image" in lines[0]
    assert not (tmp_path / "out.json").exists()


@pytest.fixture(scope="module")
def tiny_elf(tmp_path_factory) -> bytes:
    """A small ELF executable without .BTF, built with gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed (apt-get install gcc)")
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.c").write_text("int main(void) { return 0; }\n")
    subprocess.run([gcc, "-o", str(folder / "tiny"), str(folder / "tiny.c")], check=True)
    return (folder / "tiny").read_bytes()


def test_error_when_the_elf_has_no_btf(tmp_path, tiny_elf):
    tiny = tmp_path / "tiny"
    tiny.write_bytes(tiny_elf)
    result = run_pyrebox("symbols", str(tiny), "-o", str(tmp_path / "out.json"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tiny) in lines[0] and "no .BTF section" in lines[0]
    # Its types are in DWARF only: the table comes from the debug package.
    assert lines[0].endswith("its symbol table must be made from the vmlinux of its debug package "
                             "(Debian: linux-image-<release>-dbg), with `pyrebox symbols "
                             "/usr/lib/debug/boot/vmlinux-<release> -o kernel.isf.json.xz`")


def test_error_when_the_kernel_has_no_btf_names_its_debug_package(elf, tmp_path):
    # The guest's kernel without its .BTF section (renamed): the release
    # in the message is the banner's.
    section = elf.section(".BTF")
    data = bytearray(elf.data)
    names = elf.section(".shstrtab")
    at = data.index(b".BTF\0", names.offset, names.offset + names.size)
    data[at:at + 4] = b".XYZ"
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(bytes(data))
    result = run_pyrebox("symbols", str(vmlinux), "-o", str(tmp_path / "out.json"))
    assert result.returncode == 2 and section is not None
    lines = result.stderr.strip().splitlines()
    assert lines == [f"pyrebox symbols: {vmlinux}: no .BTF section: the kernel was built without "
                     "CONFIG_DEBUG_INFO_BTF, so its types are only in DWARF debug information: its "
                     "symbol table must be made from the vmlinux of its debug package (Debian: "
                     f"linux-image-{built_release()}-dbg), with `pyrebox symbols "
                     f"/usr/lib/debug/boot/vmlinux-{built_release()} -o kernel.isf.json.xz`"]


def test_error_when_the_btf_is_corrupt_names_the_offset_and_problem(elf, tmp_path):
    section = elf.section(".BTF")
    data = bytearray(elf.data)
    # The first type's info word: kind 31, which BTF does not have.
    struct.pack_into("<I", data, section.offset + 24 + 4, 31 << 24)
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(bytes(data))
    result = run_pyrebox("symbols", str(vmlinux), "-o", str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pyrebox symbols: {vmlinux}: the .BTF section (at {section.offset:#x} in the kernel ELF) "
        "is corrupt: libbpf: Unsupported BTF_KIND:31 (Invalid argument)"]


def _lz4_legacy(data: bytes) -> bytes:
    import lz4.block

    blocks = [data[i:i + (8 << 20)] for i in range(0, len(data), 8 << 20)]
    out = [LZ4_LEGACY_MAGIC]
    for block in blocks:
        packed = lz4.block.compress(block, store_size=False)
        out.append(struct.pack("<I", len(packed)) + packed)
    return b"".join(out)


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("compress", [
    lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
    lambda d: gzip.compress(d, mtime=0),
    _zstd,
    _lz4_legacy,
], ids=["xz", "gzip", "zstd", "lz4"])
def test_compressed_payloads_are_found_by_their_magic(tiny_elf, compress):
    # Junk before the stream and the 4-byte size the kernel build appends after it.
    image = os.urandom(4096).replace(b"\xfd7zXZ", b"xxxxx") + compress(tiny_elf)
    image += struct.pack("<I", len(tiny_elf))
    assert extract_elf(image, "image") == tiny_elf


def test_an_uncompressed_vmlinux_is_accepted(elf, tmp_path):
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(elf.data)
    assert load_kernel(vmlinux).data == elf.data


def test_plain_json_output(tmp_path):
    target = tmp_path / "small.json"
    write_isf({"metadata": {}}, target)
    assert json.loads(target.read_text()) == {"metadata": {}}


# ------------------------------------------------------------------- kallsyms


def test_kallsyms_has_every_symbol(kallsyms, generated):
    _, _, isf, _ = generated
    # 94,266 entries (88,582 distinct names) in 6.1.0-56-amd64: all of
    # kallsyms (CONFIG_KALLSYMS_ALL), not only the ~30,000 exported symbols.
    assert len(kallsyms.symbols) > 80_000
    assert len(isf["symbols"]) > 80_000
    names = {s.name: s for s in kallsyms.symbols}
    for name in ("start_kernel", "do_exit", "wake_up_new_task", "__x64_sys_getppid"):
        assert names[name].type in "Tt" and name in isf["symbols"]
    assert names["init_task"].type in "Dd"
    for sym in kallsyms.symbols:
        assert re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", sym.name), sym.name
    # Sorted by address, as the kernel keeps them.
    addresses = [s.address for s in kallsyms.symbols]
    assert addresses == sorted(addresses)


def test_symbol_addresses_match_the_image(elf, generated):
    _, _, isf, _ = generated
    symbols = isf["symbols"]
    text = elf.section(".text").addr
    assert symbols["_text"]["address"] == text == 0xFFFFFFFF81000000
    assert symbols["_stext"]["address"] in section_range(elf, ".text")
    assert symbols["start_kernel"]["address"] in section_range(elf, ".init.text")
    assert symbols["init_task"]["address"] in section_range(elf, ".data")
    # Per-CPU variables are offsets in the per-CPU area (linked at 0).
    assert symbols["current_task"]["address"] < section_range(elf, ".data..percpu").stop


def test_linux_banner_points_at_the_banner(elf, generated):
    _, _, isf, _ = generated
    banner = isf["symbols"]["linux_banner"]
    address = banner["address"]
    assert address in section_range(elf, ".rodata")
    offset = elf.vaddr_to_offset(address)
    text = elf.data[offset:elf.data.index(b"\0", offset)]
    assert text.startswith(f"Linux version {built_release()} ".encode())
    assert banner["type"] == {"kind": "array", "count": len(text) + 1,
                              "subtype": {"kind": "base", "name": "char"}}


def test_kallsyms_tables_are_symbols_too(kallsyms, generated):
    _, _, isf, _ = generated
    symbols = isf["symbols"]
    for label in ("kallsyms_names", "kallsyms_token_table", "kallsyms_token_index",
                  "kallsyms_markers", "kallsyms_num_syms", "kallsyms_offsets",
                  "kallsyms_relative_base"):
        assert symbols[label]["address"] == kallsyms.tables[label]
    assert symbols["kallsyms_num_syms"]["type"] == {"kind": "base", "name": "unsigned int"}


# ----------------------------------------------------------------- volatility


def test_volatility_loads_task_struct(volatility_table):
    task = volatility_table.get_type("task_struct")
    assert {m: task.relative_child_offset(m) for m in TASK_STRUCT_OFFSETS} == TASK_STRUCT_OFFSETS
    # Members of anonymous structs are lifted into their parent.
    assert volatility_table.get_type("mm_struct").relative_child_offset("mm_mt") == 0


def test_volatility_symbols(volatility_table, kallsyms, generated):
    _, _, isf, _ = generated
    by_name = {s.name: s.address for s in kallsyms.symbols}
    init_task = volatility_table.get_symbol("init_task")
    assert init_task.address == by_name["init_task"]
    assert init_task.type.vol.type_name.endswith("!task_struct")
    banner = volatility_table.get_symbol("linux_banner")
    assert banner.constant_data.startswith(f"Linux version {built_release()} ".encode())
    assert banner.constant_data.endswith(b"\0")
    assert banner.type.vol.count == len(banner.constant_data)
    assert len(list(volatility_table.symbols)) == len(isf["symbols"])
    # Variables Volatility's Linux plugins read through object_from_symbol.
    for name, type_name in (("init_mm", "mm_struct"), ("modules", "list_head"),
                            ("init_pid_ns", "pid_namespace"), ("init_files", "files_struct"),
                            ("mod_tree", "mod_tree_root")):
        assert volatility_table.get_symbol(name).type.vol.type_name.endswith("!" + type_name), name
    for name in ("page_offset_base", "vmemmap_base"):
        assert volatility_table.get_symbol(name).type.size == 8
    assert volatility_table.get_symbol("swapper_pg_dir").type.vol.count == 512
    tk_core = volatility_table.get_symbol("tk_core").type.vol.type_name
    assert volatility_table.get_type(tk_core.split("!")[1]).relative_child_offset("timekeeper") > 0
    # A per-CPU variable typed from its BTF VAR.
    assert volatility_table.get_symbol("current_task").type.vol.type_name.endswith("pointer")


# ------------------------------------------------------------- guest builder


def test_guest_build_records_the_kernel_isf(generated):
    """guest/build.py writes build/guest/kernel.isf.json.xz with the generator
    and records it in manifest.json."""
    _, _, isf, _ = generated
    manifest = json.loads(open(os.path.join(paths.GUEST, "manifest.json")).read())
    record = manifest["kernel_isf"]
    built = json.loads(lzma.decompress(open(os.path.join(paths.GUEST, record["file"]), "rb").read()))
    assert record["symbols"] == len(built["symbols"]) == len(isf["symbols"])
    assert record["types"] == len(built["user_types"]) == len(isf["user_types"])
    assert built["symbols"]["init_task"] == isf["symbols"]["init_task"]
