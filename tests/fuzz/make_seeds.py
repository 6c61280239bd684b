#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz harness to tests/fuzz/corpus/<harness>/.

The seeds are small, valid inputs in each harness's format (see the comment
at the top of each *_fuzz.cpp, and linux_layout.h for the synthetic kernel):
the fuzzer starts from inputs the code accepts whole and mutates from there.
Run it after changing a harness's input format; the output is committed.
"""
import base64
import json
import lzma
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Mem:
    """Physical memory from address 0, grown as bytes are put."""

    def __init__(self):
        self.b = bytearray()

    def put(self, addr, value, size=8):
        self.bytes(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def bytes(self, addr, data):
        if len(self.b) < addr + len(data):
            self.b.extend(bytes(addr + len(data) - len(self.b)))
        self.b[addr:addr + len(data)] = data

    def string(self, addr, s):
        self.bytes(addr, s.encode() + b"\0")


# ---- paging -------------------------------------------------------------

def paging_seed(mode, cr3, vaddrs, length, entries, entry_size=8):
    m = Mem()
    m.put(0, mode, 1)
    m.put(2, length, 2)
    m.put(8, cr3)
    for i, va in enumerate(vaddrs):
        m.put(16 + 8 * i, va)
    m.put(48, 0x80000011)    # CR0: PG, PE
    m.put(56, 0x20)          # CR4: PAE
    m.put(64, 0x500)         # EFER: LMA, LME
    for addr, value in entries:
        m.put(addr, value, entry_size)
    return bytes(m.b)


def paging_seeds():
    # Every table is the page at physical 0 (the header's page), each level
    # using another index of it, so a whole walk fits in one small input.
    va4 = (16 << 39) | (17 << 30) | (18 << 21) | (19 << 12) | 0x40
    va4_2m = (16 << 39) | (17 << 30) | (20 << 21) | 0x123
    va4_1g = (16 << 39) | (21 << 30) | 0x10
    long4 = paging_seed(3, 0, [va4, va4_2m, va4_1g, va4 + 0xff0], 0x20,
                        [(16 * 8, 0x7), (17 * 8, 0x7), (18 * 8, 0x7), (19 * 8, 0x7),
                         (20 * 8, 0x87), (21 * 8, 0x87)])
    va5 = (16 << 48) | (17 << 39) | (18 << 30) | (19 << 21) | (20 << 12) | 0x8
    long5 = paging_seed(4, 0, [va5, va5 | (0x1ff << 48), 0, va5 + 0x10], 0x10,
                        [(16 * 8, 0x7), (17 * 8, 0x7), (18 * 8, 0x7), (19 * 8, 0x7),
                         (20 * 8, 0x7)])
    vapae = (1 << 30) | (34 << 21) | (35 << 12) | 0x8
    pae = paging_seed(2, 0x100, [vapae, (1 << 30) | (36 << 21) | 0x20, 0, vapae + 8], 0x10,
                      [(0x108, 0x1), (34 * 8, 0x7), (35 * 8, 0x7), (36 * 8, 0x87)])
    va32 = (32 << 22) | (33 << 12) | 0x10
    legacy = paging_seed(1, 0, [va32, (34 << 22) | 0x44, va32 + 0xff8, 0], 0x10,
                         [(0x80, 0x7), (0x84, 0x7), (0x88, 0x87)], entry_size=4)
    flat = paging_seed(0, 0, [0x10, 0x20, 0xff8, 0x1000], 0x10, [])
    return {"long4": long4, "long5": long5, "pae": pae, "legacy32": legacy, "none": flat}


# ---- maple tree ---------------------------------------------------------

DENSE, LEAF, RANGE, ARANGE = 0, 1, 2, 3


def enode(node, kind):
    return node | (kind << 3) | 4


def maple_seeds():
    # Node addresses above 4096: lower root values are the kernel's
    # reserved entries, not nodes (xa_is_node).
    m = Mem()
    m.put(0, enode(0x1100, RANGE) | 2)  # ma_root
    m.put(8, 0x1700)                    # a struct maple_tree; its ma_root at +8
    m.put(0x1708, enode(0x1600, ARANGE) | 2)
    # A range node: [0, 0xfff] -> leaf 0x1200, [0x1000, 0x1fff] -> leaf
    # 0x1300, [0x2000, max] -> dense node 0x1400; three slots in use
    # (metadata end 2).
    m.put(0x1100 + 8, 0xfff)
    m.put(0x1100 + 16, 0x1fff)
    m.put(0x1100 + 128, enode(0x1200, LEAF))
    m.put(0x1100 + 136, enode(0x1300, LEAF))
    m.put(0x1100 + 144, enode(0x1400, DENSE))
    m.put(0x1100 + 248, 2, 1)
    for leaf, base in ((0x1200, 0), (0x1300, 0x1000)):
        m.put(leaf + 8, base + 0x7ff)
        m.put(leaf + 16, base + 0xbff)
        m.put(leaf + 128, 0)                    # a gap
        m.put(leaf + 136, 0xffff888000a00000 + base)
        m.put(leaf + 144, 0xffff888000b00000 + base)
        m.put(leaf + 248, 2, 1)
    for i in range(4):
        m.put(0x1400 + 8 + 8 * i, 0xffff888000c00000 + 0x100 * i)
    # An arange node (the root of the tree at 0x1700): two leaves.
    m.put(0x1600 + 8, 0x4fff)
    m.put(0x1600 + 80, enode(0x1200, LEAF))
    m.put(0x1600 + 88, enode(0x1300, LEAF))
    m.put(0x1600 + 240, 1, 1)
    tree = bytes(m.b)
    single = Mem()
    single.put(0, 0xffff888000d00000)  # a tree of one entry, in ma_root
    return {"range_leaf_dense_arange": tree, "single_entry": bytes(single.b)}


# ---- ELF image ----------------------------------------------------------

def elf_seed(gnu_hash=True, absolute=False, dyn=True):
    base = 0x7f0000400000
    link = 0 if dyn else base
    ptr = (base - link if absolute else 0) + link
    syms = [("", 0, 0, 0, 0, 0), ("puts", 0, 0, 2, 1, 0), ("__getpid", 0x300, 8, 2, 1, 14),
            ("getpid", 0x300, 8, 2, 2, 14), ("data_obj", 0x310, 0x20, 1, 1, 20),
            ("GLIBC_2.2.5", 0, 0, 1, 1, 0xfff1), ("memcpy", 0x320, 16, 2, 1, 14),
            ("memcpy", 0x330, 16, 2, 1, 14), ("tls_var", 0x10, 4, 6, 1, 22)]
    hidden = {6}
    m = Mem()
    m.bytes(0, b"\x7fELF\x02\x01\x01")
    m.put(16, 3 if dyn else 2, 2)
    m.put(32, 64)        # e_phoff
    m.put(54, 56, 2)     # e_phentsize
    m.put(56, 2, 2)      # e_phnum
    m.put(64, 1, 4)      # PT_LOAD
    m.put(64 + 16, link)
    m.put(64 + 40, 0x1000)
    m.put(120, 2, 4)     # PT_DYNAMIC at 0x500
    m.put(120 + 16, link + 0x500)
    m.put(120 + 40, 0x80)
    strtab = b"\0"
    offsets = []
    for name, *_ in syms:
        offsets.append(len(strtab) if name else 0)
        if name:
            strtab += name.encode() + b"\0"
    m.bytes(0x600, strtab)
    for i, (name, value, size, typ, bind, shndx) in enumerate(syms):
        e = 0x200 + 24 * i
        m.put(e, offsets[i], 4)
        m.put(e + 4, (bind << 4) | typ, 1)
        m.put(e + 6, shndx, 2)
        relocated = value == 0 or shndx == 0xfff1 or typ == 6
        m.put(e + 8, value if relocated else link + value)
        m.put(e + 16, size)
        m.put(0x480 + 2 * i, 0x8002 if i in hidden else 1, 2)
    h = 0x400
    if gnu_hash:
        m.put(h, 1, 4)
        m.put(h + 4, 1, 4)
        m.put(h + 8, 1, 4)
        m.put(h + 12, 6, 4)
        m.put(h + 16, (1 << 64) - 1)
        m.put(h + 24, 1, 4)
        for i in range(1, len(syms)):
            m.put(h + 28 + 4 * (i - 1), (i * 2) | (1 if i + 1 == len(syms) else 0), 4)
    else:
        m.put(h, 1, 4)
        m.put(h + 4, len(syms), 4)
    dyn_entries = [(0x6ffffef5 if gnu_hash else 4, ptr + 0x400), (5, ptr + 0x600),
                   (6, ptr + 0x200), (10, len(strtab)), (11, 24), (0x6ffffff0, ptr + 0x480),
                   (0, 0)]
    for i, (tag, val) in enumerate(dyn_entries):
        m.put(0x500 + 16 * i, tag)
        m.put(0x500 + 16 * i + 8, val)
    return bytes(m.b)


def elf_seeds():
    return {"dyn_gnu_hash": elf_seed(), "dyn_sysv_hash_absolute": elf_seed(False, True),
            "exec": elf_seed(dyn=False)}


# ---- the synthetic kernel of linux_layout.h -----------------------------

def kernel_memory(header):
    m = Mem()
    for addr, value, size in header:
        m.put(addr, value, size)
    init, a, b = 0x100, 0x180, 0x200
    m.put(0x40, 0xc00)          # modules: one module
    m.put(0x48, 0xc00)
    m.put(0x60, 0)              # __per_cpu_offset[0]: current_task at 0x80
    m.put(0x68, 0x780)          # [1]: at 0x800 (the mount's parent: not a task)
    m.put(0x80, a)              # CPU 0 runs task A
    tasks = [(init, 0, init, 0, "swapper/0"), (a, 1, init, 0x300, "init"),
             (b, 2, init, 0, "kthreadd")]
    for i, (t, tgid, parent, mm, comm) in enumerate(tasks):
        m.put(t + 16, tasks[(i + 1) % 3][0] + 16)
        m.put(t + 24, tasks[(i + 2) % 3][0] + 16)
        m.put(t + 32, tgid, 4)
        m.put(t + 36, tgid, 4)
        m.put(t + 40, parent)
        m.put(t + 48, mm)
        m.string(t + 64, comm)
    # mm_struct of A: mmap (list kernels) and mm_mt.ma_root (maple kernels),
    # pgd, arguments.
    m.put(0x300, 0x400)
    m.put(0x308, enode(0x1000, LEAF) | 2)
    m.put(0x310, 0x7000)
    args, env, execfn = b"init\0-s\0", b"HOME=/\0", b"/sbin/init\0"
    m.bytes(0x900, args + env + execfn)
    m.put(0x318, 0x900)
    m.put(0x320, 0x900 + len(args))
    m.put(0x328, 0x900 + len(args))
    m.put(0x330, 0x900 + len(args) + len(env))
    # Two VMAs of /sbin/init.
    for vma, start, end, nxt, pgoff in ((0x400, 0x400000, 0x401000, 0x440, 0),
                                        (0x440, 0x401000, 0x403000, 0, 1)):
        m.put(vma, start)
        m.put(vma + 8, end)
        m.put(vma + 16, 0x300)
        m.put(vma + 24, nxt)
        m.put(vma + 32, pgoff)
        m.put(vma + 40, 0x500)
    # The maple tree: one leaf, [0x400000, 0x400fff] and [0x401000, 0x402fff].
    # (A node above 4096: lower root values are reserved entries.)
    m.put(0x1000 + 8, 0x3fffff)
    m.put(0x1000 + 16, 0x400fff)
    m.put(0x1000 + 24, 0x402fff)
    m.put(0x1000 + 136, 0x400)
    m.put(0x1000 + 144, 0x440)
    m.put(0x1000 + 248, 3, 1)
    # struct file, inode, super_block.
    m.put(0x500, 0x810)         # f_path.mnt: the vfsmount in the mount at 0x800
    m.put(0x508, 0xa40)         # f_path.dentry
    m.put(0x510, 0x580)         # f_inode
    m.put(0x580, 1234)
    m.put(0x588, 0x5b0)
    m.put(0x590, 0x3000)
    m.put(0x598, 1700000000)
    m.put(0x5a0, 5)
    m.put(0x5b0, 0x801, 4)
    # The root mount: its own parent, mounted on the root dentry.
    m.put(0x800, 0x800)
    m.put(0x808, 0xa00)
    m.put(0x810, 0xa00)         # mnt.mnt_root
    # Dentries "/", "sbin", "init" (d_name.name at +16).
    for d, parent, name_at, name in ((0xa00, 0xa00, 0xb00, ""), (0xa20, 0xa00, 0xb08, "sbin"),
                                     (0xa40, 0xa20, 0xb10, "init")):
        m.put(d, parent)
        m.put(d + 16, name_at)
        m.string(name_at, name)
    # The module "crc7": list, name, core_layout / mem[0], kallsyms.
    mod = 0xc00
    m.put(mod, 0x40)
    m.put(mod + 8, 0x40)
    m.string(mod + 16, "crc7")
    m.put(mod + 72, 0xffffffffc0000000)
    m.put(mod + 80, 0x2000, 4)
    m.put(mod + 192, 0xd00)
    m.put(0xd00, 0xd40)         # symtab
    m.put(0xd08, 3, 4)          # num_symtab
    m.put(0xd10, 0xe00)         # strtab
    strtab = b"\0crc7_be\0crc7_table\0"
    m.bytes(0xe00, strtab)
    for i, (name_off, info, value, size) in enumerate(
            ((1, 0x12, 0xffffffffc0000010, 0x40), (9, 0x11, 0xffffffffc0001000, 0x100))):
        e = 0xd40 + 24 * (i + 1)
        m.put(e, name_off, 4)
        m.put(e + 4, info, 1)
        m.put(e + 6, 1, 2)
        m.put(e + 8, value)
        m.put(e + 16, size)
    return bytes(m.b)


def linux_seeds():
    out = {}
    for variant, name in ((0, "maple_core_layout"), (3, "vma_list_module_mem")):
        out[name] = kernel_memory([(0, variant, 1), (8, 0xa40, 8), (16, 0x810, 8), (24, 0, 1)])
    return out


def kallsyms_seeds():
    out = {}
    for variant, name in ((0, "core_layout"), (2, "module_mem")):
        header = [(0, variant, 1), (8, 0xc00, 8), (16, 0xffffffffc0000020, 8)]
        mem = bytearray(kernel_memory(header))
        mem[24:24 + 8] = b"crc7_be\0"
        out[name] = bytes(mem)
    return out


# ---- ISF ----------------------------------------------------------------

def isf_seeds():
    ptr = lambda to: {"kind": "pointer", "subtype": {"kind": "struct", "name": to}}
    doc = {
        "metadata": {"format": "6.2.0", "linux": {"banner": "Linux version 6.1.0 (fuzz)"}},
        "base_types": {
            "pointer": {"size": 8, "signed": False, "kind": "int", "endian": "little"},
            "int": {"size": 4, "signed": True, "kind": "int", "endian": "little"},
            "char": {"size": 1, "signed": True, "kind": "char", "endian": "little"}},
        "enums": {"mod_mem_type": {"size": 4, "base": "int",
                                   "constants": {"MOD_TEXT": 0, "MOD_DATA": 1}}},
        "symbols": {
            "init_task": {"address": 4096, "type": {"kind": "struct", "name": "task_struct"}},
            "linux_banner": {"address": 8192, "constant_data":
                             base64.b64encode(b"Linux version 6.1.0 (fuzz)\n\0").decode()},
            "_text": {"address": 18446744071578845184}},
        "user_types": {
            "list_head": {"kind": "struct", "size": 16, "fields": {
                "next": {"offset": 0, "type": ptr("list_head")},
                "prev": {"offset": 8, "type": ptr("list_head")}}},
            "task_struct": {"kind": "struct", "size": 128, "fields": {
                "tasks": {"offset": 16, "type": {"kind": "struct", "name": "list_head"}},
                "unnamed_field_0": {"offset": 32, "anonymous": True,
                                    "type": {"kind": "union", "name": "ids"}},
                "mm": {"offset": 48, "type": ptr("mm_struct")},
                "flags": {"offset": 56, "type": {"kind": "bitfield", "bit_position": 3,
                                                 "bit_length": 2,
                                                 "type": {"kind": "base", "name": "int"}}},
                "comm": {"offset": 64, "type": {"kind": "array", "count": 16,
                                                "subtype": {"kind": "base", "name": "char"}}}}},
            "ids": {"kind": "union", "size": 8, "fields": {
                "pid": {"offset": 0, "type": {"kind": "base", "name": "int"}},
                "tgid": {"offset": 4, "type": {"kind": "base", "name": "int"}}}},
            "mm_struct": {"kind": "struct", "size": 16, "fields": {
                "pgd": {"offset": 8, "type": ptr("pgd_t")}}},
            "maple_tree": {"kind": "struct", "size": 16, "fields": {
                "ma_root": {"offset": 8, "type": ptr("maple_node")}}}}}
    text = json.dumps(doc, indent=1).encode()
    minimal = b'{"metadata": {"format": "6.2.0"}, "user_types": {}}'
    return {"small.json": text, "small.json.xz": lzma.compress(text), "minimal.json": minimal,
            "minimal.json.xz": lzma.compress(minimal)}


def main():
    corpora = {"paging": paging_seeds(), "maple_tree": maple_seeds(), "elf_symbols": elf_seeds(),
               "linux_walkers": linux_seeds(), "kallsyms": kallsyms_seeds(), "isf": isf_seeds()}
    for harness, seeds in corpora.items():
        d = os.path.join(HERE, "corpus", harness)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{harness}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
