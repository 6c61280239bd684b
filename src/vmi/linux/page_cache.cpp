// A file's contents from the kernel's page cache: struct file -> f_mapping
// (struct address_space) -> i_pages, an xarray of folios indexed by page
// offset in the file -> the struct page of that offset -> its physical page
// (its place in the vmemmap array gives its frame number).
//
// What the walk reads is the guest's: node shifts are checked to step down
// by 6 bits, the walk is at most 11 nodes deep (64-bit indices), sibling
// entries must point inside their node, and the folio must cover the index.
#include <cstring>

#include "base/hex.h"
#include "vmi/linux/linux_kernel.h"

namespace pyrebox::vmi::linux_guest {

namespace {

constexpr unsigned kChunkShift = 6;  // XA_CHUNK_SHIFT
constexpr uint64_t kChunk = 1u << kChunkShift;
constexpr int kMaxDepth = 11;
constexpr uint64_t kMaxFolioPages = 512;  // a PMD-sized folio

// The xarray's entry encodings (include/linux/xarray.h).
bool is_internal(uint64_t entry) { return (entry & 3) == 2; }
bool is_node(uint64_t entry) { return is_internal(entry) && entry > 4096; }
bool is_sibling(uint64_t entry) { return is_internal(entry) && entry < ((kChunk - 1) << 2); }
bool is_value(uint64_t entry) { return (entry & 1) != 0; }

}  // namespace

Expected<std::optional<uint64_t>> LinuxKernel::file_page_address(PhysicalMemory& mem,
                                                                 uint64_t file,
                                                                 uint64_t index) const {
    if (!location_) {
        return Error{"the Linux kernel has not been located in guest memory yet"};
    }
    const auto f_mapping = symbols_.member_offset("file", "f_mapping");
    const auto i_pages = symbols_.member_offset("address_space", "i_pages");
    const auto xa_head = symbols_.member_offset("xarray", "xa_head");
    const auto node_shift = symbols_.member_offset("xa_node", "shift");
    const auto node_slots = symbols_.member_offset("xa_node", "slots");
    const auto page_index = symbols_.member_offset("page", "index");
    const auto page_size = symbols_.type_size("page");
    // The array of struct page: the vmemmap (x86-64), or mem_map (i386's
    // flat memory model); either is a pointer variable.
    auto vmemmap_base = symbols_.symbol_address("vmemmap_base");
    if (!vmemmap_base) {
        vmemmap_base = symbols_.symbol_address("mem_map");
    }
    if (!f_mapping || !i_pages || !xa_head || !node_shift || !node_slots || !page_index ||
        !page_size || *page_size == 0 || !vmemmap_base) {
        return Error{"the Linux symbol table does not describe the page cache (file.f_mapping, "
                     "address_space.i_pages, xa_node, page, vmemmap_base or mem_map)"};
    }
    const uint64_t pgd = location_->pgd_paddr;
    const unsigned ptr = pointer_bytes();
    auto u64 = [&](uint64_t va, const char* what) -> Expected<uint64_t> {
        uint64_t v = 0;
        if (auto r = read_virtual(mem, mode_, pgd, va, &v, ptr); !r) {
            return Error{std::string("cannot read ") + what + ": " + r.error()};
        }
        return v;
    };
    auto mapping = u64(file + *f_mapping, "file.f_mapping");
    if (!mapping) {
        return Error{mapping.error()};
    }
    auto entry = u64(*mapping + *i_pages + *xa_head, "the page cache's xa_head");
    if (!entry) {
        return Error{entry.error()};
    }
    if (*entry == 0) {
        return std::optional<uint64_t>{};
    }
    if (!is_node(*entry)) {
        // A single entry at index 0 lives in xa_head itself.
        if (index != 0 || is_internal(*entry) || is_value(*entry)) {
            return std::optional<uint64_t>{};
        }
    }
    int depth = 0;
    unsigned last_shift = 64;
    while (is_node(*entry)) {
        const uint64_t node = *entry - 2;
        uint8_t shift = 0;
        if (auto r = read_virtual(mem, mode_, pgd, node + *node_shift, &shift, 1); !r) {
            return Error{"cannot read xa_node.shift at " + hex(node) + ": " + r.error()};
        }
        if (++depth > kMaxDepth || shift % kChunkShift != 0 || shift >= last_shift ||
            (last_shift != 64 && shift != last_shift - kChunkShift)) {
            return Error{"the page cache's xa_node at " + hex(node) + " is corrupt (shift " +
                         std::to_string(shift) + " at depth " + std::to_string(depth) + ")"};
        }
        if (last_shift == 64 && shift + kChunkShift < 64 && (index >> (shift + kChunkShift)) != 0) {
            return std::optional<uint64_t>{};  // beyond what the tree holds
        }
        last_shift = shift;
        uint64_t offset = (index >> shift) & (kChunk - 1);
        entry = u64(node + *node_slots + ptr * offset, "an xa_node slot");
        if (!entry) {
            return Error{entry.error()};
        }
        if (is_sibling(*entry)) {  // one entry for several indices: the first slot's
            offset = *entry >> 2;
            entry = u64(node + *node_slots + ptr * offset, "an xa_node slot");
            if (!entry) {
                return Error{entry.error()};
            }
        }
        if (*entry == 0 || is_value(*entry) || (is_internal(*entry) && !is_node(*entry))) {
            return std::optional<uint64_t>{};  // not cached (or a shadow of an evicted page)
        }
    }
    const uint64_t folio = *entry;
    auto first = u64(folio + *page_index, "a folio's index");
    if (!first) {
        return Error{first.error()};
    }
    if (index < *first || index - *first >= kMaxFolioPages) {
        return Error{"the page cache's folio at " + hex(folio) + " starts at page " +
                     std::to_string(*first) + ", not at or just before page " +
                     std::to_string(index)};
    }
    const uint64_t page = folio + (index - *first) * *page_size;
    auto vmemmap = u64(*vmemmap_base + location_->virt_slide, "vmemmap_base");
    if (!vmemmap) {
        return Error{vmemmap.error()};
    }
    if (page < *vmemmap || (page - *vmemmap) % *page_size != 0) {
        return Error{"the page cache's struct page at " + hex(page) + " is not in the vmemmap"};
    }
    return std::optional<uint64_t>{((page - *vmemmap) / *page_size) << 12};
}

}  // namespace pyrebox::vmi::linux_guest
