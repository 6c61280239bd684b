"""pyrebox.symbol_files: host files of guest modules, found by GNU build ID
(debug-file layout and plain folders), their .symtab read, and the build
ID read from untrusted bytes. Programs are compiled here with a build ID
given on the command line, so every expected value is known."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from pyrebox import symbol_files

BUILD_ID = "0123456789abcdef0123456789abcdef01234567"
SOURCE = """
static int helper(int x) { return x * 3 + 1; }
int (*volatile keep)(int) = helper;
int main(void) { return keep(2); }
"""


def compile_program(folder, name="prog", build_id=BUILD_ID):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    source = folder / f"{name}.c"
    source.write_text(SOURCE)
    out = folder / name
    subprocess.run(["gcc", "-O1", "-fno-inline", f"-Wl,--build-id=0x{build_id}", "-o", str(out),
                    str(source)], check=True)
    return out


def nm(path):
    listing = subprocess.run(["nm", "-S", str(path)], check=True, capture_output=True,
                             text=True).stdout
    out = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return out


def file_reader(path):
    data = path.read_bytes()

    def read(addr, length):
        if addr < 0 or addr + length > len(data):
            raise ValueError(f"cannot read {length} bytes at {addr:#x}")
        return data[addr:addr + length]
    return read


@pytest.fixture(autouse=True)
def restore_path():
    saved = symbol_files.path()
    yield
    symbol_files.set_path(saved)


def test_the_build_id_is_read_from_the_image(tmp_path):
    prog = compile_program(tmp_path)
    assert symbol_files.build_id(file_reader(prog), 0) == bytes.fromhex(BUILD_ID)


def test_a_plain_folder_gives_the_unstripped_copy_with_its_static_function(tmp_path):
    prog = compile_program(tmp_path)
    symbols = nm(prog)
    symbol_files.set_path([str(tmp_path)])
    table = symbol_files.find(bytes.fromhex(BUILD_ID))
    assert table is not None and table.file == str(prog)
    found = {s.name: (s.value, s.size) for s in table.symbols}
    assert found["helper"] == symbols["helper"]   # static: in .symtab only
    assert found["main"] == symbols["main"]
    assert table.first_vaddr == 0                  # PIE: the base maps to 0
    rebased = {name: addr for addr, _, name in table.rebased(0x5555_0000_0000)}
    assert rebased["helper"] == 0x5555_0000_0000 + symbols["helper"][0]


def test_a_debug_file_under_build_id_names_a_stripped_program(tmp_path):
    prog = compile_program(tmp_path)
    symbols = nm(prog)
    debug = tmp_path / "debug" / ".build-id" / BUILD_ID[:2] / (BUILD_ID[2:] + ".debug")
    debug.parent.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(prog), str(debug)], check=True)
    subprocess.run(["strip", str(prog)], check=True)
    assert symbol_files.build_id(file_reader(prog), 0) == bytes.fromhex(BUILD_ID)
    symbol_files.set_path([str(tmp_path / "debug")])
    table = symbol_files.find(bytes.fromhex(BUILD_ID))
    assert table is not None and table.file == str(debug)
    assert {s.name: (s.value, s.size) for s in table.symbols}["helper"] == symbols["helper"]


def test_another_build_id_finds_nothing(tmp_path):
    compile_program(tmp_path)
    symbol_files.set_path([str(tmp_path), str(tmp_path / "missing")])
    assert symbol_files.find(bytes.fromhex("ff" * 20)) is None


def test_a_stripped_copy_alone_gives_no_table(tmp_path):
    prog = compile_program(tmp_path)
    subprocess.run(["strip", str(prog)], check=True)
    symbol_files.set_path([str(tmp_path)])
    assert symbol_files.find(bytes.fromhex(BUILD_ID)) is None


def test_a_folder_is_read_again_when_it_changes(tmp_path):
    symbol_files.set_path([str(tmp_path)])
    assert symbol_files.find(bytes.fromhex(BUILD_ID)) is None
    os.utime(tmp_path, ns=(1, 1))  # a later copy may keep the old mtime: force a change
    compile_program(tmp_path)
    assert symbol_files.find(bytes.fromhex(BUILD_ID)) is not None


def test_path_setting(tmp_path):
    assert symbol_files.set_path(f"{tmp_path}:{tmp_path}/b") == [str(tmp_path), f"{tmp_path}/b"]
    assert symbol_files.add_path(str(tmp_path)) == [str(tmp_path), f"{tmp_path}/b"]
    assert symbol_files.add_path(str(tmp_path / "c"))[-1] == str(tmp_path / "c")


def test_the_installed_libc_debug_file_names_libc_start_call_main():
    """Debian's libc6-dbg (installed by the set-up): libc.so.6 is stripped,
    its debug file has the static __libc_start_call_main."""
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        pytest.skip("no x86-64 libc")
    with open(libc, "rb") as f:
        data = f.read(1 << 16)
    ident = symbol_files.build_id(lambda a, n: data[a:a + n] if a + n <= len(data)
                                  else (_ for _ in ()).throw(ValueError(a)), 0)
    assert ident is not None
    symbol_files.set_path(["/usr/lib/debug"])
    table = symbol_files.find(ident)
    assert table is not None, "libc6-dbg is not installed"
    assert "__libc_start_call_main" in {s.name for s in table.symbols}


# --- untrusted bytes ---


def elf_header(phoff=64, phnum=1, phentsize=56):
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, phoff)
    struct.pack_into("<HH", header, 0x36, phentsize, phnum)
    return header


def phdr(p_type, vaddr, memsz):
    return struct.pack("<IIQQQQQQ", p_type, 0, 0, vaddr, vaddr, memsz, memsz, 0x1000)


def image(*parts):
    data = bytearray(0x2000)
    at = 0
    for part in parts:
        data[at:at + len(part)] = part
        at += len(part)
    return data


def reader(data):
    def read(addr, length):
        if addr < 0 or addr + length > len(data):
            raise ValueError(f"unreadable {addr:#x}")
        return bytes(data[addr:addr + length])
    return read


def note(namesz, descsz, kind, name=b"GNU\0", desc=b"\xaa" * 20):
    """A note header claiming the sizes given, followed by `name` padded
    to 4 bytes and `desc` (whatever the header claims)."""
    return struct.pack("<III", namesz, descsz, kind) + name.ljust(4, b"\0") + desc


@pytest.mark.parametrize("header", [
    elf_header(phnum=0), elf_header(phnum=65), elf_header(phentsize=32),
    elf_header(phoff=1 << 40), bytearray(b"\x7fELF\x01\x01" + bytes(58)),
])
def test_bad_program_headers_give_no_build_id(header):
    assert symbol_files.build_id(reader(image(header)), 0) is None


def test_notes_are_bounded_and_checked():
    good = note(4, 20, 3)
    data = image(elf_header(phnum=2), phdr(1, 0, 0x2000), phdr(4, 0x100, len(good)))
    data[0x100:0x100 + len(good)] = good
    assert symbol_files.build_id(reader(data), 0) == b"\xaa" * 20
    for bad in (note(4, 0xFFFFFFF0, 3), note(0xFFFFFFF0, 20, 3), note(4, 100, 3),
                note(4, 20, 3, name=b"XYZ\0")):
        data = image(elf_header(phnum=2), phdr(1, 0, 0x2000), phdr(4, 0x100, len(bad)))
        data[0x100:0x100 + len(bad)] = bad
        assert symbol_files.build_id(reader(data), 0) is None, bad[:12].hex()
    # A note segment larger than 4 KiB is not read at all.
    data = image(elf_header(phnum=2), phdr(1, 0, 0x2000), phdr(4, 0x100, 0x1001))
    assert symbol_files.build_id(reader(data), 0) is None


def test_an_unreadable_image_gives_no_build_id():
    assert symbol_files.build_id(reader(bytearray(10)), 0) is None
    data = image(elf_header(phnum=2), phdr(1, 0, 0x2000), phdr(4, 0x5000, 64))
    assert symbol_files.build_id(reader(data), 0) is None
