#include "vmi/linux/maple_tree.h"

#include <gtest/gtest.h>

#include "fake_ram.h"

#include <array>
#include <map>
#include <string>
#include <vector>

namespace {

using pyrebox::vmi::PagingMode;
using pyrebox::vmi::PhysicalMemory;
using pyrebox::vmi::SymbolTable;
using pyrebox::vmi::linux_guest::maple_root_entries;
using pyrebox::vmi::linux_guest::maple_tree_entries;
using pyrebox::vmi::linux_guest::MapleEntry;
using pyrebox::vmi::linux_guest::MapleLayout;

using pyrebox::testing::FakeRam;

// The direct map: kernel virtual 0xffff888000000000 + pa -> pa, with one
// 1 GiB page, in the 4-level tables at 0x1000.
constexpr uint64_t kPgd = 0x1000;
constexpr uint64_t kDirectMap = 0xffff888000000000ull;

void map_direct(FakeRam& ram) {
    ram.put(kPgd + ((kDirectMap >> 39) & 511) * 8, 0x2000 | 3);
    ram.put(0x2000 + ((kDirectMap >> 30) & 511) * 8, 0x0 | 3 | 0x80);
}

uint64_t va(uint64_t pa) { return kDirectMap + pa; }

// The 6.1 x86-64 maple tree types, the way dwarf2json writes them: the
// anonymous unions and structures as "unnamed_field_*" members.
std::string maple_isf(unsigned ma_root_offset = 8) {
    return R"({"metadata": {"format": "6.2.0"},
  "base_types": {"pointer": {"size": 8, "signed": false, "kind": "int", "endian": "little"}},
  "enums": {}, "symbols": {},
  "user_types": {
    "maple_tree": {"kind": "struct", "size": 24, "fields": {
      "unnamed_field_0": {"type": {"kind": "union", "name": "unnamed_a1"}, "offset": 0, "anonymous": true},
      "ma_root": {"type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}, "offset": )" +
           std::to_string(ma_root_offset) + R"(},
      "ma_flags": {"type": {"kind": "base", "name": "unsigned int"}, "offset": )" +
           std::to_string(ma_root_offset + 8) + R"(}}},
    "unnamed_a1": {"kind": "union", "size": 4, "fields": {
      "ma_lock": {"type": {"kind": "struct", "name": "spinlock"}, "offset": 0}}},
    "maple_metadata": {"kind": "struct", "size": 2, "fields": {
      "end": {"type": {"kind": "base", "name": "unsigned char"}, "offset": 0},
      "gap": {"type": {"kind": "base", "name": "unsigned char"}, "offset": 1}}},
    "maple_range_64": {"kind": "struct", "size": 256, "fields": {
      "parent": {"type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "maple_pnode"}}, "offset": 0},
      "pivot": {"type": {"kind": "array", "count": 15, "subtype": {"kind": "base", "name": "long unsigned int"}}, "offset": 8},
      "unnamed_field_80": {"type": {"kind": "union", "name": "unnamed_b2"}, "offset": 128, "anonymous": true}}},
    "unnamed_b2": {"kind": "union", "size": 128, "fields": {
      "slot": {"type": {"kind": "array", "count": 16, "subtype": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}}, "offset": 0},
      "unnamed_field_0": {"type": {"kind": "struct", "name": "unnamed_c3"}, "offset": 0, "anonymous": true}}},
    "unnamed_c3": {"kind": "struct", "size": 128, "fields": {
      "pad": {"type": {"kind": "array", "count": 15, "subtype": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}}, "offset": 0},
      "meta": {"type": {"kind": "struct", "name": "maple_metadata"}, "offset": 120}}},
    "maple_arange_64": {"kind": "struct", "size": 248, "fields": {
      "parent": {"type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "maple_pnode"}}, "offset": 0},
      "pivot": {"type": {"kind": "array", "count": 9, "subtype": {"kind": "base", "name": "long unsigned int"}}, "offset": 8},
      "slot": {"type": {"kind": "array", "count": 10, "subtype": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}}, "offset": 80},
      "gap": {"type": {"kind": "array", "count": 10, "subtype": {"kind": "base", "name": "long unsigned int"}}, "offset": 160},
      "meta": {"type": {"kind": "struct", "name": "maple_metadata"}, "offset": 240}}},
    "maple_node": {"kind": "struct", "size": 256, "fields": {
      "unnamed_field_0": {"type": {"kind": "union", "name": "unnamed_d4"}, "offset": 0, "anonymous": true}}},
    "unnamed_d4": {"kind": "union", "size": 256, "fields": {
      "unnamed_field_0": {"type": {"kind": "struct", "name": "unnamed_e5"}, "offset": 0, "anonymous": true},
      "unnamed_field_1": {"type": {"kind": "struct", "name": "unnamed_f6"}, "offset": 0, "anonymous": true},
      "mr64": {"type": {"kind": "struct", "name": "maple_range_64"}, "offset": 0},
      "ma64": {"type": {"kind": "struct", "name": "maple_arange_64"}, "offset": 0}}},
    "unnamed_e5": {"kind": "struct", "size": 256, "fields": {
      "parent": {"type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "maple_pnode"}}, "offset": 0},
      "slot": {"type": {"kind": "array", "count": 31, "subtype": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}}, "offset": 8}}},
    "unnamed_f6": {"kind": "struct", "size": 48, "fields": {
      "pad": {"type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}, "offset": 0},
      "piv_parent": {"type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "maple_enode"}}, "offset": 24},
      "parent_slot": {"type": {"kind": "base", "name": "unsigned char"}, "offset": 32}}}
  }})";
}

MapleLayout layout_of(const std::string& isf) {
    auto t = SymbolTable::parse(isf, "maple.isf");
    EXPECT_TRUE(t.ok()) << t.error();
    auto l = MapleLayout::from_symbols(*t);
    EXPECT_TRUE(l.ok()) << l.error();
    return *l;
}

enum : uint64_t { kDense = 0, kLeaf = 1, kRange = 2, kArange = 3 };
constexpr uint64_t kMax = ~0ull;

// A node pointer in a parent's slot, and the root pointer (ma_root).
uint64_t enode(uint64_t node_pa, uint64_t type) { return va(node_pa) | (type << 3) | 4; }
uint64_t root(uint64_t node_pa, uint64_t type) { return enode(node_pa, type) | 2; }

// maple_leaf_64 / maple_range_64: pivots at 8, slots at 128, metadata
// (end) at 248 when slot 15 is free.
void range_node(FakeRam& ram, uint64_t pa, const std::vector<uint64_t>& pivots,
                const std::vector<uint64_t>& slots, int meta_end) {
    for (uint64_t off = 0; off < 256; off += 8) {
        ram.put(pa + off, 0);
    }
    for (size_t i = 0; i < pivots.size(); ++i) {
        ram.put(pa + 8 + 8 * i, pivots[i]);
    }
    for (size_t i = 0; i < slots.size(); ++i) {
        ram.put(pa + 128 + 8 * i, slots[i]);
    }
    if (meta_end >= 0) {
        ram.put(pa + 248, static_cast<uint64_t>(meta_end), 1);
    }
}

// maple_arange_64: pivots at 8, slots at 80, gaps at 160, end at 240.
void arange_node(FakeRam& ram, uint64_t pa, const std::vector<uint64_t>& pivots,
                 const std::vector<uint64_t>& slots, int meta_end) {
    for (uint64_t off = 0; off < 256; off += 8) {
        ram.put(pa + off, 0);
    }
    for (size_t i = 0; i < pivots.size(); ++i) {
        ram.put(pa + 8 + 8 * i, pivots[i]);
    }
    for (size_t i = 0; i < slots.size(); ++i) {
        ram.put(pa + 80 + 8 * i, slots[i]);
        ram.put(pa + 160 + 8 * i, 0x1000);  // gaps: not used by the walk
    }
    ram.put(pa + 240, static_cast<uint64_t>(meta_end), 1);
}

// vm_area_struct pointers (only their values matter).
uint64_t vma(int n) { return 0xffff888004a00000ull + 0xc0 * n; }

constexpr uint64_t kTree = 0x100000;  // the struct maple_tree (in an mm_struct)
constexpr uint64_t kRoot = 0x200000, kL1 = 0x200100, kR1 = 0x200200, kL2 = 0x200300,
                   kL3 = 0x200400, kL4 = 0x200500;

// A process's tree: an arange_64 root over a leaf, a range_64 with two
// leaves, and a leaf; the leaves use each way of ending their data.
std::vector<MapleEntry> build_tree(FakeRam& ram, uint64_t ma_root_offset = 8) {
    map_direct(ram);
    ram.put(kTree + ma_root_offset, root(kRoot, kArange));
    // Root [0, max]: the last slot's pivot is left 0 (its logical pivot is max).
    arange_node(ram, kRoot, {0x5555555fffffull, 0x7ffff7ffffffull},
                {enode(kL1, kLeaf), enode(kR1, kRange), enode(kL4, kLeaf)}, 2);
    std::vector<MapleEntry> want;
    // L1 [0, 0x5555555fffff]: a gap, three VMAs, a gap; end from the metadata.
    range_node(ram, kL1,
               {0x55555554ffffull, 0x555555551fffull, 0x555555555fffull, 0x555555556fffull,
                0x5555555fffffull},
               {0, vma(1), vma(2), vma(3), 0}, 4);
    want.push_back({0x555555550000ull, 0x555555551fffull, vma(1)});
    want.push_back({0x555555552000ull, 0x555555555fffull, vma(2)});
    want.push_back({0x555555556000ull, 0x555555556fffull, vma(3)});
    // R1 [0x555555600000, 0x7ffff7ffffff]: two leaves.
    range_node(ram, kR1, {0x7ffff7dfffffull, 0x7ffff7ffffffull},
               {enode(kL2, kLeaf), enode(kL3, kLeaf)}, 1);
    // L2 [0x555555600000, 0x7ffff7dfffff].
    range_node(ram, kL2, {0x555555620fffull, 0x7ffff7d7ffffull, 0x7ffff7dfffffull},
               {vma(4), 0, vma(5)}, 2);
    want.push_back({0x555555600000ull, 0x555555620fffull, vma(4)});
    want.push_back({0x7ffff7d80000ull, 0x7ffff7dfffffull, vma(5)});
    // L3 [0x7ffff7e00000, 0x7ffff7ffffff]: 15 slots, pivot 14 is the node's
    // max (ma_data_end() = 14 without the metadata, which is left 0xff).
    std::vector<uint64_t> pivots, slots;
    for (int i = 0; i < 15; ++i) {
        const uint64_t first = 0x7ffff7e00000ull + 0x1000ull * i;
        const uint64_t last = i < 14 ? first + 0xfff : 0x7ffff7ffffffull;
        pivots.push_back(last);
        slots.push_back(vma(10 + i));
        want.push_back({first, last, vma(10 + i)});
    }
    range_node(ram, kL3, pivots, slots, 0xff);
    // L4 [0x7ffff8000000, max]: all 16 slots (pivot 14 neither 0 nor the
    // max); VMAs in the odd slots, a reserved internal entry in slot 4.
    pivots.clear();
    slots.clear();
    for (int i = 0; i < 16; ++i) {
        const uint64_t first = i == 0 ? 0x7ffff8000000ull : 0x7ffffffd0000ull + 0x1000ull * i;
        const uint64_t last = i < 15 ? 0x7ffffffd0000ull + 0x1000ull * (i + 1) - 1 : kMax;
        if (i < 15) {
            pivots.push_back(last);
        }
        if (i % 2) {
            slots.push_back(vma(30 + i));
            want.push_back({first, last, vma(30 + i)});
        } else {
            slots.push_back(i == 4 ? 0x406 : 0);  // XA_ZERO_ENTRY
        }
    }
    range_node(ram, kL4, pivots, slots, -1);
    return want;
}

void expect_entries(const pyrebox::Expected<std::vector<MapleEntry>>& got,
                    const std::vector<MapleEntry>& want) {
    ASSERT_TRUE(got.ok()) << got.error();
    ASSERT_EQ(got->size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ((*got)[i].first, want[i].first) << "entry " << i;
        EXPECT_EQ((*got)[i].last, want[i].last) << "entry " << i;
        EXPECT_EQ((*got)[i].value, want[i].value) << "entry " << i;
    }
}

TEST(MapleLayout, FromA61Isf) {
    const MapleLayout l = layout_of(maple_isf());
    EXPECT_EQ(l.root, 8u);
    EXPECT_EQ(l.node_size, 256u);
    EXPECT_EQ(l.dense_slot, 8u);
    EXPECT_EQ(l.dense_slots, 31u);
    EXPECT_EQ(l.range_pivot, 8u);
    EXPECT_EQ(l.range_slot, 128u);
    EXPECT_EQ(l.range_meta, 248u);
    EXPECT_EQ(l.range_slots, 16u);
    EXPECT_EQ(l.arange_pivot, 8u);
    EXPECT_EQ(l.arange_slot, 80u);
    EXPECT_EQ(l.arange_meta, 240u);
    EXPECT_EQ(l.arange_slots, 10u);
    EXPECT_EQ(l.meta_end, 0u);
}

TEST(MapleLayout, NeedsMapleTrees) {
    auto t = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {}})", "old.isf");
    ASSERT_TRUE(t.ok()) << t.error();
    auto l = MapleLayout::from_symbols(*t);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.error(),
              "old.isf has no maple_tree type: the kernel keeps no maple trees (older than 6.1?)");
}

TEST(MapleLayout, RejectsSlotAndPivotArraysThatDoNotMatch) {
    std::string isf = maple_isf();
    const std::string from = R"("count": 10, "subtype": {"kind": "pointer")";
    isf.replace(isf.find(from), from.size(), R"("count": 30, "subtype": {"kind": "pointer")");
    auto t = SymbolTable::parse(isf, "bad.isf");
    ASSERT_TRUE(t.ok()) << t.error();
    auto l = MapleLayout::from_symbols(*t);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.error(), "bad.isf: maple node pivot arrays are not one shorter than their slot arrays");
}

TEST(MapleTree, WalksAProcessTreeInOrder) {
    FakeRam ram;
    const auto want = build_tree(ram);
    ASSERT_EQ(want.size(), 28u);
    expect_entries(maple_tree_entries(ram, PagingMode::Long4, kPgd, layout_of(maple_isf()), va(kTree)),
                   want);
}

TEST(MapleTree, TakesMaRootsOffsetFromTheIsf) {
    FakeRam ram;
    const auto want = build_tree(ram, 16);  // a bigger lock before ma_root
    const MapleLayout l = layout_of(maple_isf(16));
    EXPECT_EQ(l.root, 16u);
    expect_entries(maple_tree_entries(ram, PagingMode::Long4, kPgd, l, va(kTree)), want);
}

TEST(MapleTree, EmptyAndSingleEntryTrees) {
    FakeRam ram;
    map_direct(ram);
    const MapleLayout l = layout_of(maple_isf());
    ram.put(kTree + 8, 0);
    expect_entries(maple_tree_entries(ram, PagingMode::Long4, kPgd, l, va(kTree)), {});
    ram.put(kTree + 8, vma(7));  // one entry at index 0 lives in ma_root
    expect_entries(maple_tree_entries(ram, PagingMode::Long4, kPgd, l, va(kTree)),
                   {{0, 0, vma(7)}});
    expect_entries(maple_root_entries(ram, PagingMode::Long4, kPgd, l, 0x406), {});
}

TEST(MapleTree, LeafRoot) {
    FakeRam ram;
    map_direct(ram);
    range_node(ram, kL1, {0x3fffff, 0x400fff, 0x600fff}, {0, vma(1), 0, vma(2)}, 3);
    expect_entries(maple_root_entries(ram, PagingMode::Long4, kPgd, layout_of(maple_isf()),
                                      root(kL1, kLeaf)),
                   {{0x400000, 0x400fff, vma(1)}, {0x601000, kMax, vma(2)}});
}

TEST(MapleTree, DenseNode) {
    FakeRam ram;
    map_direct(ram);
    for (uint64_t off = 0; off < 256; off += 8) {
        ram.put(kL1 + off, 0);
    }
    ram.put(kL1 + 8 + 8 * 0, vma(1));
    ram.put(kL1 + 8 + 8 * 5, vma(2));
    ram.put(kL1 + 8 + 8 * 30, vma(3));
    expect_entries(maple_root_entries(ram, PagingMode::Long4, kPgd, layout_of(maple_isf()),
                                      root(kL1, kDense)),
                   {{0, 0, vma(1)}, {5, 5, vma(2)}, {30, 30, vma(3)}});
}

TEST(MapleTree, Errors) {
    FakeRam ram;
    build_tree(ram);
    const MapleLayout l = layout_of(maple_isf());

    auto r = maple_root_entries(ram, PagingMode::Long4, kPgd, l, root(kRoot, 5));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "maple node 0xffff888000200000: unknown node type 5 (enode 0xffff88800020002e)");

    r = maple_root_entries(ram, PagingMode::Long4, kPgd, l, root(0x40000000, kArange));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              "maple node 0xffff888040000000 (maple_arange_64): 0xffff888040000000 is not mapped "
              "in address space 0x1000 (PDPTE not present)");

    r = maple_tree_entries(ram, PagingMode::Long4, kPgd, l, 0xffff900000000000ull);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              "maple tree at 0xffff900000000000: ma_root: 0xffff900000000008 is not mapped in "
              "address space 0x1000 (PML4E not present)");

    ram.put(kRoot + 240, 12, 1);  // arange_64 end beyond its 10 slots
    r = maple_tree_entries(ram, PagingMode::Long4, kPgd, l, va(kTree));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              "maple node 0xffff888000200000 (maple_arange_64): 13 slots in use, more than the "
              "node's 10");

    // A node that is its own child (memory changing under the walk).
    arange_node(ram, kRoot, {}, {enode(kRoot, kArange)}, 0);
    r = maple_tree_entries(ram, PagingMode::Long4, kPgd, l, va(kTree));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              "maple node 0xffff888000200000: reached a second time (a cycle or a shared node: "
              "not a tree)");
}

// Nodes shared between parents multiply: a chain of k nodes each with two
// slots pointing at the next would expand to 2^k leaves. The walk stops at
// the first node it meets again.
TEST(MapleTree, ASharedNodeIsAnError) {
    FakeRam ram;
    map_direct(ram);
    const MapleLayout l = layout_of(maple_isf());
    range_node(ram, kL1, {0x3fffff}, {0, vma(1)}, 1);
    range_node(ram, kRoot, {0x7fff}, {enode(kL1, kLeaf), enode(kL1, kLeaf)}, 1);
    auto r = maple_root_entries(ram, PagingMode::Long4, kPgd, l, root(kRoot, kRange));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              "maple node 0xffff888000200100: reached a second time (a cycle or a shared node: "
              "not a tree)");
}

}  // namespace
