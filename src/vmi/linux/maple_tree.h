// Reading a Linux maple tree (6.1 and later) from guest memory: how a
// process's VMAs are kept (mm_struct.mm_mt, indexed by address).
//
// The tree's nodes are 256-byte `struct maple_node`s; a node pointer
// ("enode") carries the node type in bits 3..6 (maple_dense, maple_leaf_64,
// maple_range_64, maple_arange_64) and the root pointer (ma_root) also has
// bit 1 set. Range nodes have pivots (the last index of each slot but the
// last) and slots (children, or entries in leaves); the number of slots in
// use comes from the pivots or from the node's metadata, as the kernel's
// ma_data_end() does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/expected.h"
#include "vmi/isf.h"
#include "vmi/paging.h"

namespace pyrebox::vmi::linux_guest {

struct MapleEntry {
    // The indices the entry covers; for mm_mt, vm_start .. vm_end - 1.
    uint64_t first = 0;
    uint64_t last = 0;
    // What is stored; for mm_mt, a struct vm_area_struct pointer.
    uint64_t value = 0;
};

// Where the fields of the maple tree structures are. from_symbols() takes
// each from the ISF (maple_tree, maple_node, maple_range_64,
// maple_arange_64, maple_metadata) and keeps the 6.1 x86-64 value of a
// field the ISF lacks.
struct MapleLayout {
    unsigned word = 8;            // sizeof(unsigned long) = pointer size: 8, 4 on i386
    uint64_t root = 8;            // maple_tree.ma_root
    uint64_t node_size = 256;     // sizeof(struct maple_node)
    uint64_t dense_slot = 8;      // maple_node.slot
    size_t dense_slots = 31;      // MAPLE_NODE_SLOTS
    uint64_t range_pivot = 8;     // maple_range_64.pivot
    uint64_t range_slot = 128;    // maple_range_64.slot
    uint64_t range_meta = 248;    // maple_range_64.meta (shares the last slot)
    size_t range_slots = 16;      // MAPLE_RANGE64_SLOTS
    uint64_t arange_pivot = 8;    // maple_arange_64.pivot
    uint64_t arange_slot = 80;    // maple_arange_64.slot
    uint64_t arange_meta = 240;   // maple_arange_64.meta
    size_t arange_slots = 10;     // MAPLE_ARANGE64_SLOTS
    uint64_t meta_end = 0;        // maple_metadata.end

    // Errors: the ISF has no maple_tree type (a kernel before 6.1), or the
    // layout does not fit in a node.
    static Expected<MapleLayout> from_symbols(const SymbolTable& symbols);
};

// The entries of the maple tree at `tree_vaddr` (the struct maple_tree, e.g.
// mm + offset of mm_struct.mm_mt), in index order, read through the page
// tables at `pgd`. NULL slots (gaps) and the kernel's reserved internal
// entries (values with low bits 0b10) are left out. Errors name the node
// and the problem (unreadable memory, an unknown node type, a slot count
// beyond the node, a tree deeper than 31 levels, a node reached twice, more
// than 2^18 nodes or 2^20 entries).
Expected<std::vector<MapleEntry>> maple_tree_entries(PhysicalMemory& mem, PagingMode mode,
                                                     uint64_t pgd, const MapleLayout& layout,
                                                     uint64_t tree_vaddr);

// The same from the value of ma_root.
Expected<std::vector<MapleEntry>> maple_root_entries(PhysicalMemory& mem, PagingMode mode,
                                                     uint64_t pgd, const MapleLayout& layout,
                                                     uint64_t ma_root);

}  // namespace pyrebox::vmi::linux_guest
