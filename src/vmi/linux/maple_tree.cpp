#include "vmi/linux/maple_tree.h"

#include <cinttypes>
#include <cstdio>
#include <string>
#include <unordered_set>

#include "base/hex.h"

namespace pyrebox::vmi::linux_guest {

namespace {

enum MapleType : unsigned { kDense = 0, kLeaf64 = 1, kRange64 = 2, kArange64 = 3 };

constexpr uint64_t kNodeMask = 0xFF;     // MAPLE_NODE_MASK
constexpr unsigned kTypeShift = 3;       // MAPLE_NODE_TYPE_SHIFT
constexpr uint64_t kTypeMask = 0x0F;     // MAPLE_NODE_TYPE_MASK
constexpr int kMaxHeight = 31;           // MAPLE_HEIGHT_MAX
// Bounds on one walk, whatever the guest wrote. A process has at most
// vm.max_map_count mappings (65,530 by default), each an entry with at most
// a gap beside it; a leaf holds up to 16 slots. 2^20 entries in 2^18 nodes
// leave a margin of 8 over that, and keep a walk's reads at 64 MiB and its
// result at 24 MiB.
constexpr size_t kMaxNodes = 1u << 18;
constexpr size_t kMaxEntries = 1u << 20;
constexpr uint64_t kMaxReservedEntry = 4096;

const char* type_name(unsigned type) {
    switch (type) {
    case kDense:
        return "maple_dense";
    case kLeaf64:
        return "maple_leaf_64";
    case kRange64:
        return "maple_range_64";
    case kArange64:
        return "maple_arange_64";
    default:
        return "unknown";
    }
}

// xa_is_internal(): the kernel's reserved entries (and, with a value above
// 4096, the root's node pointer).
bool is_internal(uint64_t entry) { return (entry & 3) == 2; }

// xa_is_node(), which tells a root node pointer from a single entry.
bool is_node(uint64_t entry) { return is_internal(entry) && entry > kMaxReservedEntry; }

// A little-endian word of `size` bytes (an unsigned long or a pointer).
uint64_t word_at(const std::vector<uint8_t>& node, uint64_t offset, unsigned size) {
    uint64_t v = 0;
    for (int i = static_cast<int>(size) - 1; i >= 0; --i) {
        v = (v << 8) | node[offset + static_cast<uint64_t>(i)];
    }
    return v;
}

class Walker {
public:
    Walker(PhysicalMemory& mem, PagingMode mode, uint64_t pgd, const MapleLayout& layout)
        : mem_(mem), mode_(mode), pgd_(pgd), l_(layout) {}

    Expected<bool> walk(uint64_t enode, uint64_t min, uint64_t max, int depth) {
        const uint64_t node_va = enode & ~kNodeMask;
        const unsigned type = static_cast<unsigned>((enode >> kTypeShift) & kTypeMask);
        const std::string where = "maple node " + hex(node_va);
        if (depth > kMaxHeight) {
            return Error{where + ": the tree is deeper than " + std::to_string(kMaxHeight) +
                         " levels"};
        }
        if (++nodes_ > kMaxNodes) {
            return Error{where + ": more than " + std::to_string(kMaxNodes) + " nodes"};
        }
        // A tree reaches each node once; a node met again is a cycle or a
        // node shared by two parents (a DAG, which would multiply entries).
        if (!visited_.insert(node_va).second) {
            return Error{where + ": reached a second time (a cycle or a shared node: not a tree)"};
        }
        if (type > kArange64) {
            return Error{where + ": unknown node type " + std::to_string(type) + " (enode " +
                         hex(enode) + ")"};
        }
        std::vector<uint8_t> node(l_.node_size);
        auto r = read_virtual(mem_, mode_, pgd_, node_va, node.data(), node.size());
        if (!r) {
            return Error{where + " (" + type_name(type) + "): " + r.error()};
        }

        if (type == kDense) {
            for (size_t i = 0; i < l_.dense_slots; ++i) {
                const uint64_t v = word_at(node, l_.dense_slot + l_.word * i, l_.word);
                if (v && !is_internal(v)) {
                    if (auto added = add(where, {min + i, min + i, v}); !added) {
                        return added;
                    }
                }
                if (min + i == max) {
                    break;
                }
            }
            return true;
        }

        const bool arange = type == kArange64;
        const size_t slots = arange ? l_.arange_slots : l_.range_slots;
        const size_t pivots = slots - 1;
        const uint64_t pivot_off = arange ? l_.arange_pivot : l_.range_pivot;
        const uint64_t slot_off = arange ? l_.arange_slot : l_.range_slot;
        const uint64_t meta_off = (arange ? l_.arange_meta : l_.range_meta) + l_.meta_end;
        auto pivot = [&](size_t i) { return word_at(node, pivot_off + l_.word * i, l_.word); };

        // ma_data_end(): the last slot in use.
        size_t end;
        if (arange) {
            end = node[meta_off];
        } else {
            const uint64_t last_pivot = pivot(pivots - 1);
            if (last_pivot == 0) {
                end = node[meta_off];
            } else if (last_pivot == max) {
                end = pivots - 1;
            } else {
                end = pivots;
            }
        }
        if (end >= slots) {
            return Error{where + " (" + type_name(type) + "): " + std::to_string(end + 1) +
                         " slots in use, more than the node's " + std::to_string(slots)};
        }

        uint64_t lo = min;
        for (size_t i = 0; i <= end; ++i) {
            // mas_logical_pivot(): the last index of slot i.
            uint64_t hi = i < pivots ? pivot(i) : max;
            if (hi == 0 && i > 0) {
                hi = max;
            }
            const uint64_t v = word_at(node, slot_off + l_.word * i, l_.word);
            if (type == kLeaf64) {
                if (v && !is_internal(v)) {
                    if (auto added = add(where, {lo, hi, v}); !added) {
                        return added;
                    }
                }
            } else if (v) {
                auto child = walk(v, lo, hi, depth + 1);
                if (!child) {
                    return child;
                }
            }
            if (hi >= max) {
                break;
            }
            lo = hi + 1;
        }
        return true;
    }

    std::vector<MapleEntry> take() { return std::move(out_); }

private:
    Expected<bool> add(const std::string& where, const MapleEntry& entry) {
        if (out_.size() >= kMaxEntries) {
            return Error{where + ": more than " + std::to_string(kMaxEntries) + " entries"};
        }
        out_.push_back(entry);
        return true;
    }

    PhysicalMemory& mem_;
    PagingMode mode_;
    uint64_t pgd_;
    const MapleLayout& l_;
    size_t nodes_ = 0;
    std::unordered_set<uint64_t> visited_;
    std::vector<MapleEntry> out_;
};

// The offset of a member, or `fallback` when the ISF does not have it; the
// element count of an array member in `count` (unchanged otherwise).
uint64_t field(const SymbolTable& symbols, const char* type, const char* name, uint64_t fallback,
               size_t* count = nullptr) {
    auto m = symbols.member(type, name);
    if (!m) {
        return fallback;
    }
    if (count && m->type.kind == "array" && m->type.count > 0) {
        *count = static_cast<size_t>(m->type.count);
    }
    return m->offset;
}

}  // namespace

Expected<MapleLayout> MapleLayout::from_symbols(const SymbolTable& symbols) {
    if (!symbols.has_user_type("maple_tree")) {
        return Error{symbols.origin() +
                     " has no maple_tree type: the kernel keeps no maple trees (older than 6.1?)"};
    }
    MapleLayout l;
    l.word = symbols.pointer_size().value_or(8) == 4 ? 4 : 8;
    l.root = field(symbols, "maple_tree", "ma_root", l.root);
    if (auto size = symbols.type_size("maple_node")) {
        l.node_size = *size;
    }
    l.dense_slot = field(symbols, "maple_node", "slot", l.dense_slot, &l.dense_slots);
    size_t range_pivots = l.range_slots - 1;
    l.range_pivot = field(symbols, "maple_range_64", "pivot", l.range_pivot, &range_pivots);
    l.range_slot = field(symbols, "maple_range_64", "slot", l.range_slot, &l.range_slots);
    l.range_meta = field(symbols, "maple_range_64", "meta", l.range_meta);
    size_t arange_pivots = l.arange_slots - 1;
    l.arange_pivot = field(symbols, "maple_arange_64", "pivot", l.arange_pivot, &arange_pivots);
    l.arange_slot = field(symbols, "maple_arange_64", "slot", l.arange_slot, &l.arange_slots);
    l.arange_meta = field(symbols, "maple_arange_64", "meta", l.arange_meta);
    l.meta_end = field(symbols, "maple_metadata", "end", l.meta_end);

    // maple_range_64 and maple_arange_64 sit at the start of maple_node
    // (members mr64 and ma64 of its union); a layout that puts them
    // elsewhere is not one this code knows.
    for (const char* member : {"mr64", "ma64"}) {
        if (auto off = symbols.member_offset("maple_node", member); off && *off != 0) {
            return Error{symbols.origin() + ": maple_node." + member + " is at offset " +
                         std::to_string(*off) + ", expected 0"};
        }
    }
    const auto check = [&](const char* what, uint64_t end) -> Expected<bool> {
        if (end > l.node_size) {
            return Error{symbols.origin() + ": " + what + " ends at byte " + std::to_string(end) +
                         " of a " + std::to_string(l.node_size) + "-byte maple_node"};
        }
        return true;
    };
    if (l.range_slots < 2 || l.arange_slots < 2) {
        return Error{symbols.origin() + ": maple node slot arrays with fewer than 2 slots"};
    }
    if (range_pivots != l.range_slots - 1 || arange_pivots != l.arange_slots - 1) {
        return Error{symbols.origin() + ": maple node pivot arrays are not one shorter than their "
                                        "slot arrays"};
    }
    const uint64_t w = l.word;
    for (auto r : {check("maple_node.slot", l.dense_slot + w * l.dense_slots),
                   check("maple_range_64.pivot", l.range_pivot + w * (l.range_slots - 1)),
                   check("maple_range_64.slot", l.range_slot + w * l.range_slots),
                   check("maple_range_64.meta", l.range_meta + l.meta_end + 1),
                   check("maple_arange_64.pivot", l.arange_pivot + w * (l.arange_slots - 1)),
                   check("maple_arange_64.slot", l.arange_slot + w * l.arange_slots),
                   check("maple_arange_64.meta", l.arange_meta + l.meta_end + 1)}) {
        if (!r) {
            return Error{r.error()};
        }
    }
    return l;
}

Expected<std::vector<MapleEntry>> maple_root_entries(PhysicalMemory& mem, PagingMode mode,
                                                     uint64_t pgd, const MapleLayout& layout,
                                                     uint64_t ma_root) {
    std::vector<MapleEntry> out;
    if (ma_root == 0) {
        return out;
    }
    if (!is_node(ma_root)) {
        // A tree of one entry, at index 0, is kept in ma_root itself.
        if (!is_internal(ma_root)) {
            out.push_back({0, 0, ma_root});
        }
        return out;
    }
    Walker walker(mem, mode, pgd, layout);
    // The whole index range: 0 .. ULONG_MAX.
    auto r = walker.walk(ma_root, 0, layout.word == 4 ? 0xffffffffull : ~0ull, 0);
    if (!r) {
        return Error{r.error()};
    }
    return walker.take();
}

Expected<std::vector<MapleEntry>> maple_tree_entries(PhysicalMemory& mem, PagingMode mode,
                                                     uint64_t pgd, const MapleLayout& layout,
                                                     uint64_t tree_vaddr) {
    uint8_t bytes[8] = {};
    auto r = read_virtual(mem, mode, pgd, tree_vaddr + layout.root, bytes, layout.word);
    if (!r) {
        return Error{"maple tree at " + hex(tree_vaddr) + ": ma_root: " + r.error()};
    }
    uint64_t root = 0;
    for (int i = static_cast<int>(layout.word) - 1; i >= 0; --i) {
        root = (root << 8) | bytes[i];
    }
    return maple_root_entries(mem, mode, pgd, layout, root);
}

}  // namespace pyrebox::vmi::linux_guest
