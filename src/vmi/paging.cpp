#include "vmi/paging.h"

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "base/hex.h"

namespace pyrebox::vmi {

namespace {

constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kWritable = 1ull << 1;
constexpr uint64_t kUser = 1ull << 2;
constexpr uint64_t kLargePage = 1ull << 7;  // PS; PAT in a PTE
constexpr uint64_t kNoExecute = 1ull << 63;

// Physical address bits 12..51 of a 64-bit entry (and of a long-mode CR3).
constexpr uint64_t kAddressMask = 0x000FFFFFFFFFF000ull;
constexpr uint64_t kPaeCr3Mask = 0xFFFFFFE0ull;
constexpr uint64_t kLegacyAddressMask = 0xFFFFF000ull;
constexpr uint64_t kPageSize = 4096;

// One level of a walk with 64-bit entries.
struct Level {
    const char* name;
    unsigned shift;      // the lowest virtual address bit this level indexes
    uint64_t index_mask;
    bool large_page;     // PS selects a page of 1 << shift bytes
    bool rights;         // R/W, U/S and XD exist (not in a PAE PDPTE)
};

constexpr Level kLong5Levels[] = {
    {"PML5E", 48, 511, false, true}, {"PML4E", 39, 511, false, true},
    {"PDPTE", 30, 511, true, true},  {"PDE", 21, 511, true, true},
    {"PTE", 12, 511, false, true},
};
constexpr Level kPaeLevels[] = {
    {"PDPTE", 30, 3, false, false},
    {"PDE", 21, 511, true, true},
    {"PTE", 12, 511, false, true},
};

Error not_mapped(uint64_t vaddr, uint64_t pgd, const std::string& where) {
    return Error{hex(vaddr) + " is not mapped in address space " + hex(pgd) + " (" + where +
                 ")"};
}

Error entry_not_in_ram(uint64_t vaddr, uint64_t pgd, const char* name, uint64_t entry_pa) {
    return not_mapped(vaddr, pgd,
                      std::string(name) + " at physical " + hex(entry_pa) + " is not in RAM");
}

// Table entries are little-endian in guest memory, whatever the host is.
bool read_entry(PhysicalMemory& mem, uint64_t paddr, size_t size, uint64_t& entry) {
    uint8_t bytes[8];
    if (!mem.read(paddr, bytes, size)) {
        return false;
    }
    entry = 0;
    for (size_t i = size; i-- > 0;) {
        entry = (entry << 8) | bytes[i];
    }
    return true;
}

bool canonical(uint64_t vaddr, unsigned bits) {
    const auto high = static_cast<int64_t>(vaddr) >> (bits - 1);
    return high == 0 || high == -1;
}

// Walks tables of 64-bit entries (PAE and long modes) from `table`.
Expected<Translation> walk64(PhysicalMemory& mem, const Level* levels, size_t count,
                             uint64_t table, uint64_t pgd, uint64_t vaddr) {
    Translation t{0, 0, true, true, false};
    for (size_t i = 0; i < count; ++i) {
        const Level& level = levels[i];
        const uint64_t entry_pa = table + ((vaddr >> level.shift) & level.index_mask) * 8;
        uint64_t entry = 0;
        if (!read_entry(mem, entry_pa, 8, entry)) {
            return entry_not_in_ram(vaddr, pgd, level.name, entry_pa);
        }
        if (!(entry & kPresent)) {
            return not_mapped(vaddr, pgd, std::string(level.name) + " not present");
        }
        if (level.rights) {
            t.writable = t.writable && (entry & kWritable);
            t.user = t.user && (entry & kUser);
            t.nx = t.nx || (entry & kNoExecute);
        }
        const bool last = i + 1 == count;
        if (!last && (entry & kLargePage)) {
            if (!level.large_page) {
                return not_mapped(vaddr, pgd, std::string(level.name) + " has the reserved PS bit set");
            }
            t.page_size = 1ull << level.shift;
            // Masking with the page size also drops the PAT bit (bit 12).
            t.paddr = (entry & kAddressMask & ~(t.page_size - 1)) | (vaddr & (t.page_size - 1));
            return t;
        }
        if (last) {
            t.page_size = kPageSize;
            t.paddr = (entry & kAddressMask) | (vaddr & (kPageSize - 1));
            return t;
        }
        table = entry & kAddressMask;
    }
    return not_mapped(vaddr, pgd, "no levels");  // unreachable: count > 0
}

Expected<Translation> walk_legacy32(PhysicalMemory& mem, uint64_t pgd, uint64_t vaddr) {
    const uint64_t pde_pa = (pgd & kLegacyAddressMask) + ((vaddr >> 22) & 1023) * 4;
    uint64_t pde = 0;
    if (!read_entry(mem, pde_pa, 4, pde)) {
        return entry_not_in_ram(vaddr, pgd, "PDE", pde_pa);
    }
    if (!(pde & kPresent)) {
        return not_mapped(vaddr, pgd, "PDE not present");
    }
    Translation t{0, 0, (pde & kWritable) != 0, (pde & kUser) != 0, false};
    if (pde & kLargePage) {
        // A 4M page: bits 22..31 of the address from bits 22..31 of the PDE,
        // bits 32..39 (PSE-36) from bits 13..20.
        const uint64_t base = (pde & 0xFFC00000ull) | ((pde & 0x001FE000ull) << 19);
        t.page_size = 4ull << 20;
        t.paddr = base | (vaddr & (t.page_size - 1));
        return t;
    }
    const uint64_t pte_pa = (pde & kLegacyAddressMask) + ((vaddr >> 12) & 1023) * 4;
    uint64_t pte = 0;
    if (!read_entry(mem, pte_pa, 4, pte)) {
        return entry_not_in_ram(vaddr, pgd, "PTE", pte_pa);
    }
    if (!(pte & kPresent)) {
        return not_mapped(vaddr, pgd, "PTE not present");
    }
    t.writable = t.writable && (pte & kWritable);
    t.user = t.user && (pte & kUser);
    t.page_size = kPageSize;
    t.paddr = (pte & kLegacyAddressMask) | (vaddr & (kPageSize - 1));
    return t;
}

// A physically contiguous piece of a virtual range.
struct Piece {
    uint64_t paddr;
    size_t len;
};

// Translates every page of [vaddr, vaddr + len) before anything is
// transferred, which is what makes read/write all-or-nothing.
Expected<std::vector<Piece>> plan(PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                                  uint64_t vaddr, size_t len) {
    std::vector<Piece> pieces;
    if (len == 0) {
        return pieces;
    }
    if (vaddr + (len - 1) < vaddr) {
        return Error{"the range " + hex(vaddr) + " + " + hex(len) +
                     " wraps past the top of the address space"};
    }
    size_t done = 0;
    while (done < len) {
        const uint64_t va = vaddr + done;
        auto t = translate(mem, mode, pgd, va);
        if (!t) {
            return Error{t.error()};
        }
        const uint64_t left_in_page = t->page_size - (va & (t->page_size - 1));
        const size_t n = left_in_page < len - done ? static_cast<size_t>(left_in_page) : len - done;
        if (!pieces.empty() && pieces.back().paddr + pieces.back().len == t->paddr) {
            pieces.back().len += n;
        } else {
            pieces.push_back({t->paddr, n});
        }
        done += n;
    }
    return pieces;
}

Error not_ram(uint64_t vaddr, size_t offset, const Piece& piece) {
    return Error{hex(vaddr + offset) + " maps to physical " + hex(piece.paddr) + ".." +
                 hex(piece.paddr + piece.len - 1) + ", which is not RAM"};
}

}  // namespace

Expected<Translation> translate(PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                                uint64_t vaddr) {
    switch (mode) {
    case PagingMode::None:
        return Translation{vaddr, kPageSize, true, true, false};
    case PagingMode::Legacy32:
        if (vaddr >> 32) {
            return not_mapped(vaddr, pgd, "beyond 4 GiB");
        }
        return walk_legacy32(mem, pgd, vaddr);
    case PagingMode::Pae:
        if (vaddr >> 32) {
            return not_mapped(vaddr, pgd, "beyond 4 GiB");
        }
        return walk64(mem, kPaeLevels, 3, pgd & kPaeCr3Mask, pgd, vaddr);
    case PagingMode::Long4:
        if (!canonical(vaddr, 48)) {
            return not_mapped(vaddr, pgd, "not canonical");
        }
        return walk64(mem, kLong5Levels + 1, 4, pgd & kAddressMask, pgd, vaddr);
    case PagingMode::Long5:
        if (!canonical(vaddr, 57)) {
            return not_mapped(vaddr, pgd, "not canonical");
        }
        return walk64(mem, kLong5Levels, 5, pgd & kAddressMask, pgd, vaddr);
    }
    return Error{"unknown paging mode"};
}

Expected<size_t> read_virtual(PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                              uint64_t vaddr, void* buf, size_t len) {
    auto pieces = plan(mem, mode, pgd, vaddr, len);
    if (!pieces) {
        return Error{pieces.error()};
    }
    auto* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    for (const Piece& piece : pieces.value()) {
        if (!mem.read(piece.paddr, out + done, piece.len)) {
            return not_ram(vaddr, done, piece);
        }
        done += piece.len;
    }
    return len;
}

Expected<size_t> write_virtual(PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                               uint64_t vaddr, const void* buf, size_t len) {
    auto pieces = plan(mem, mode, pgd, vaddr, len);
    if (!pieces) {
        return Error{pieces.error()};
    }
    const auto* in = static_cast<const uint8_t*>(buf);
    size_t done = 0;
    for (const Piece& piece : pieces.value()) {
        if (!mem.write(piece.paddr, in + done, piece.len)) {
            return not_ram(vaddr, done, piece);
        }
        done += piece.len;
    }
    return len;
}

}  // namespace pyrebox::vmi
