"""Types from DWARF (pyrebox.symbols.dwarf) against the compiler's own facts:
tests/python/programs/dwarf_types.c is built with -g; its DWARF is read, and
the program prints sizeof, offsetof and where each bitfield's bits are."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pyrebox.symbols.btf import BtfError
from pyrebox.symbols.dwarf import DwarfError, DwarfTypes

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "programs", "dwarf_types.c")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed (apt-get install gcc)")
    folder = tmp_path_factory.mktemp("dwarf")
    program = folder / "dwarf_types"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(program), SOURCE], check=True)
    facts = dict(line.split("=", 1) for line in
                 subprocess.run([str(program)], capture_output=True, text=True).stdout.split())
    with open(program, "rb") as f:
        types = DwarfTypes(f, str(program), 8)
        types.variables_seen = types.variables()
    return types, {k: int(v) for k, v in facts.items()}, program


def fields(types, name):
    return types.user_types[name]["fields"]


def test_struct_size_and_every_field_offset_are_the_compilers(built):
    types, facts, _ = built
    sample = types.user_types["sample"]
    assert sample["kind"] == "struct" and sample["size"] == facts["sizeof_sample"]
    f = sample["fields"]
    for name in ("tag", "count", "big", "link", "qualified", "colour", "point", "wrapped",
                 "matrix", "callback", "hidden", "tail"):
        assert f[name]["offset"] == facts[f"offset_{name}"], name


def test_bitfields_are_at_their_storage_unit_with_the_compilers_bits(built):
    types, facts, _ = built
    f = fields(types, "sample")
    for name, length in (("low", 3), ("mid", 9), ("high", 20)):
        field = f[name]
        bitfield = field["type"]
        assert bitfield["kind"] == "bitfield" and bitfield["bit_length"] == length
        assert 8 * field["offset"] + bitfield["bit_position"] == facts[f"bit_{name}"], name
        assert field["offset"] % 4 == 0  # an unsigned int's unit
    assert f["high"]["type"]["type"] == {"kind": "base", "name": "int"}
    assert f["low"]["type"]["type"] == {"kind": "base", "name": "unsigned int"}


def test_descriptors_follow_the_btf_mapping(built):
    types, _, _ = built
    f = fields(types, "sample")
    # typedefs resolve: u64 is its base type, wrapped_t an unnamed struct.
    assert f["big"]["type"] == {"kind": "base", "name": "long long unsigned int"}
    wrapped = f["wrapped"]["type"]
    assert wrapped["kind"] == "array" and wrapped["count"] == 4
    assert wrapped["subtype"]["name"].startswith("unnamed_struct_")
    assert types.user_types[wrapped["subtype"]["name"]]["fields"]["value"]["offset"] == 0
    # Qualifiers are dropped; pointers to functions point at a function.
    assert f["qualified"]["type"] == {"kind": "pointer", "subtype": {"kind": "base", "name": "int"}}
    assert f["callback"]["type"] == {"kind": "pointer", "subtype": {"kind": "function"}}
    # Arrays of arrays, flexible arrays, self references, undefined structs.
    assert f["matrix"]["type"] == {"kind": "array", "count": 2, "subtype": {
        "kind": "array", "count": 3, "subtype": {"kind": "base", "name": "int"}}}
    assert f["tail"]["type"] == {"kind": "array", "count": 0,
                                 "subtype": {"kind": "base", "name": "char"}}
    assert fields(types, "list")["prev"] == {
        "offset": 8, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "list"}}}
    assert f["hidden"]["type"]["subtype"] == {"kind": "struct", "name": "opaque"}
    assert types.user_types["opaque"] == {"kind": "struct", "size": 0, "fields": {}}


def test_anonymous_members_are_flagged_and_named_by_offset(built):
    types, facts, _ = built
    f = fields(types, "sample")
    anonymous = f[f"unnamed_field_{facts['offset_as_int']:x}"]
    assert anonymous["anonymous"] is True and anonymous["offset"] == facts["offset_as_int"]
    union = types.user_types[anonymous["type"]["name"]]
    assert union["kind"] == "union" and set(union["fields"]) == {"as_int", "as_float"}
    assert types.user_types[f["point"]["type"]["name"]]["fields"]["y"]["offset"] == 2


def test_enums_base_types_variables_and_specs(built):
    types, facts, _ = built
    assert types.enums["colour"] == {"size": facts["sizeof_enum"], "base": "int",
                                     "constants": {"RED": -1, "GREEN": 2, "BLUE": 0x7fffffff}}
    assert types.base_types["float"] == {"kind": "float", "size": 4, "signed": True,
                                         "endian": "little"}
    assert types.base_types["unsigned long"]["size"] == 8
    assert types.variables_seen["global_sample"] == {"kind": "struct", "name": "sample"}
    assert types.variables_seen["global_table"]["count"] == 7
    assert types.descriptor_for("struct list *") == {
        "kind": "pointer", "subtype": {"kind": "struct", "name": "list"}}
    assert types.descriptor_for("u64[3]") == {
        "kind": "array", "count": 3, "subtype": {"kind": "base", "name": "long long unsigned int"}}
    with pytest.raises(BtfError) as e:
        types.descriptor_for("struct nothing")
    assert str(e.value).endswith("no struct nothing in DWARF (for 'struct nothing')")


def test_a_file_without_dwarf_says_where_the_debug_image_is(tmp_path):
    program = tmp_path / "plain"
    subprocess.run(["gcc", "-o", str(program), SOURCE], check=True)
    with open(program, "rb") as f, pytest.raises(DwarfError) as e:
        DwarfTypes(f, str(program), 8)
    assert str(e.value) == (
        f"{program}: no DWARF debug information (.debug_info): give the kernel's debug image, "
        f"which Debian ships in linux-image-<release>-dbg as /usr/lib/debug/boot/vmlinux-<release>")
