#include "base/x86_paging.h"

namespace pyrebox {

namespace {

// Physical address bits 12..51 of a long-mode CR3.
constexpr uint64_t kAddressMask = 0x000FFFFFFFFFF000ull;
constexpr uint64_t kPaeCr3Mask = 0xFFFFFFE0ull;
constexpr uint64_t kLegacyAddressMask = 0xFFFFF000ull;
constexpr uint64_t kKptiUserBit = 1ull << 12;

}  // namespace

PagingMode paging_mode(uint64_t cr0, uint64_t cr4, uint64_t efer) {
    const bool pg = cr0 & (1ull << 31);
    const bool pae = cr4 & (1ull << 5);
    const bool la57 = cr4 & (1ull << 12);
    const bool lma = efer & (1ull << 10);
    if (!pg) {
        return PagingMode::None;
    }
    if (lma) {
        return la57 ? PagingMode::Long5 : PagingMode::Long4;
    }
    return pae ? PagingMode::Pae : PagingMode::Legacy32;
}

uint64_t normalize_pgd(uint64_t cr3, PagingMode mode, bool kpti) {
    switch (mode) {
    case PagingMode::None:
        return 0;
    case PagingMode::Legacy32:
        return cr3 & kLegacyAddressMask & (kpti ? ~kKptiUserBit : ~0ull);
    case PagingMode::Pae:
        return cr3 & kPaeCr3Mask & (kpti ? ~kKptiUserBit : ~0ull);
    case PagingMode::Long4:
    case PagingMode::Long5:
        return cr3 & kAddressMask & (kpti ? ~kKptiUserBit : ~0ull);
    }
    return 0;
}

}  // namespace pyrebox
