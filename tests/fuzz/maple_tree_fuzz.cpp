// The maple-tree walker (vmi/linux/maple_tree) over hostile nodes.
//
// Input: physical memory from address 0, no paging (FlatRam): nodes are the
// 256-byte blocks of the input (MapleLayout's 6.1 x86-64 defaults).
//   [0..7]  an ma_root value for maple_root_entries
//   [8..15] the address of a struct maple_tree for maple_tree_entries
// Looked for: memory errors, hangs, oversized allocations. (Entry order is
// not checked: the walker takes pivots as the node gives them.)
#include <cstdint>

#include "fuzz_memory.h"
#include "vmi/linux/maple_tree.h"

using pyrebox::fuzz::FlatRam;
using namespace pyrebox::vmi;
using namespace pyrebox::vmi::linux_guest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FlatRam ram(data, size);
    const MapleLayout layout;
    (void)maple_root_entries(ram, PagingMode::None, 0, layout, ram.get(0));
    (void)maple_tree_entries(ram, PagingMode::None, 0, layout, ram.get(8));
    return 0;
}
