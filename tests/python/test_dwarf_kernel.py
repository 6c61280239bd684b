"""The default guest's kernel has both BTF and DWARF (its debug package): the
ISF from each (build/guest/kernel.isf.json.xz from BTF, and
kernel.dwarf.isf.json.xz that guest/debug_table.py makes from
linux-image-<release>-dbg) are two independent readings of the same types,
and must agree on every field offset introspection and Volatility use."""

from __future__ import annotations

import json
import lzma
import os
import re

import pytest

from pyrebox import paths
from pyrebox.symbols.isf import REQUIRED_SYMBOLS, SYMBOL_TYPES

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BTF_TABLE = os.path.join(paths.GUEST, "kernel.isf.json.xz")
DWARF_TABLE = os.path.join(paths.GUEST, "kernel.dwarf.isf.json.xz")

# What Volatility 3's Linux plugins read, besides what introspection reads
# (src/vmi: read from the source below).
VOLATILITY_FIELDS = {
    "task_struct": ["pid", "tgid", "comm", "real_parent", "parent", "tasks", "children",
                    "sibling", "mm", "active_mm", "cred", "real_cred", "files", "fs", "thread_pid",
                    "start_time", "group_leader", "thread_group", "signal", "state", "__state"],
    "mm_struct": ["pgd", "mm_mt", "start_code", "end_code", "start_brk", "brk", "start_stack",
                  "arg_start", "arg_end", "env_start", "env_end"],
    "vm_area_struct": ["vm_start", "vm_end", "vm_flags", "vm_file", "vm_pgoff", "vm_mm"],
    "cred": ["uid", "gid", "euid", "egid"],
    "module": ["list", "name", "mem", "core_layout", "state", "kallsyms", "num_syms"],
    "files_struct": ["fdt", "fdtab"],
    "fdtable": ["max_fds", "fd"],
    "file": ["f_path", "f_inode", "f_op", "f_mapping"],
    "dentry": ["d_name", "d_parent", "d_inode"],
    "list_head": ["next", "prev"],
    "kernel_symbol": ["value_offset", "name_offset"],
}


def load(path):
    with lzma.open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def tables():
    for path in (BTF_TABLE, DWARF_TABLE):
        if not os.path.isfile(path):
            pytest.skip(f"needs {path}: run 'make test' (guest/build.py, then "
                        f"guest/debug_table.py)")
    return load(BTF_TABLE), load(DWARF_TABLE)


def introspection_fields() -> dict[str, set[str]]:
    """(struct, field) pairs the C++ introspection asks the table for."""
    found: dict[str, set[str]] = {}
    folder = os.path.join(ROOT, "src", "vmi")
    for base, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(base, name), encoding="utf-8") as f:
                for struct, field in re.findall(r'\("([a-z_0-9]+)", "([a-z_0-9]+)"', f.read()):
                    found.setdefault(struct, set()).add(field)
    return found


def flat(t):
    """A type descriptor with unnamed types' names dropped and arrays
    flattened (BTF writes int a[2][3] as one array of 6, DWARF as 2 of 3)."""
    kind = t.get("kind")
    if kind in ("struct", "union", "enum"):
        return kind, None if t["name"].startswith("unnamed_") else t["name"].split("__")[0]
    if kind == "array":
        count, inner = t["count"], t["subtype"]
        while inner.get("kind") == "array":
            count, inner = count * inner["count"], inner["subtype"]
        return "array", count, flat(inner)
    if kind == "pointer":
        return "pointer", flat(t["subtype"])
    if kind == "bitfield":
        return "bitfield", t["bit_position"], t["bit_length"], flat(t["type"])
    return kind, t.get("name")


def test_every_field_introspection_and_volatility_read_agrees(tables):
    btf, dwarf = tables
    wanted = introspection_fields()
    for struct, fields in VOLATILITY_FIELDS.items():
        wanted.setdefault(struct, set()).update(fields)
    checked = 0
    for struct, fields in sorted(wanted.items()):
        if struct not in btf["user_types"]:
            assert struct not in dwarf["user_types"], struct
            continue
        b, d = btf["user_types"][struct], dwarf["user_types"][struct]
        assert (b["kind"], b["size"]) == (d["kind"], d["size"]), struct
        for field in sorted(fields):
            assert (field in b["fields"]) == (field in d["fields"]), (struct, field)
            if field in b["fields"]:
                bf, df = b["fields"][field], d["fields"][field]
                assert bf["offset"] == df["offset"], (struct, field)
                assert flat(bf["type"]) == flat(df["type"]), (struct, field)
                checked += 1
    assert checked >= 60  # 75 for 6.1: the kernel lacks some of those listed


def test_every_named_type_both_define_alike_has_the_same_fields(tables):
    btf, dwarf = tables
    b_types, d_types = btf["user_types"], dwarf["user_types"]
    # Names some compilation units define differently: which definition keeps
    # the plain name differs (BTF's deduplication, DWARF's first unit).
    variants = {n.split("__")[0] for n in list(b_types) + list(d_types) if "__" in n}
    common = [n for n in b_types if n in d_types and not n.startswith("unnamed_")
              and "__" not in n and n not in variants]
    assert len(common) > 7000
    differing = []
    for name in common:
        b, d = b_types[name], d_types[name]
        if (b["kind"], b["size"]) != (d["kind"], d["size"]):
            differing.append(name)
            continue
        for field, bf in b["fields"].items():
            df = d["fields"].get(field)
            if df is None and field.startswith("unnamed_field_"):
                continue
            if df is None or df["offset"] != bf["offset"] or flat(df["type"]) != flat(bf["type"]):
                differing.append(f"{name}.{field}")
    # Same-size structs of the same name from different files (static types
    # in .c files): at most a handful, and none introspection reads.
    assert len(differing) <= 16, differing
    assert not {d.split(".")[0] for d in differing} & set(introspection_fields())


def test_the_symbols_volatility_starts_from_agree(tables):
    btf, dwarf = tables
    b, d = btf["symbols"], dwarf["symbols"]
    for name in (*REQUIRED_SYMBOLS, *SYMBOL_TYPES):
        if name not in b:
            continue
        assert d[name]["address"] == b[name]["address"], name
        # (DWARF also types what BTF leaves void: extern char _text[].)
        if b[name]["type"] != {"kind": "base", "name": "void"}:
            assert flat(d[name]["type"]) == flat(b[name]["type"]), name
    assert d["linux_banner"]["constant_data"] == b["linux_banner"]["constant_data"]
    # The symbol table has every kallsyms name; a static name several files
    # use may be another of its addresses.
    same = sum(1 for n in b if n in d and d[n]["address"] == b[n]["address"])
    assert set(b) <= set(d) and same >= 0.99 * len(b)
