// The x86 vocabulary of address spaces that every layer shares: the guest's
// physical memory as an interface, the paging mode the control registers
// select, and the pgd that names an address space. No page walk here (that
// is vmi/paging.h); vmi/paging.h re-exports these names in pyrebox::vmi.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyrebox {

// The guest's physical memory. `read` and `write` return false when any byte
// of [paddr, paddr + len) is not backed by RAM (MMIO or beyond memory).
class PhysicalMemory {
public:
    virtual ~PhysicalMemory() = default;
    virtual bool read(uint64_t paddr, void* buf, size_t len) = 0;
    virtual bool write(uint64_t paddr, const void* buf, size_t len) = 0;
};

enum class PagingMode {
    None,      // paging off: va == pa
    Legacy32,  // 2-level, 4K/4M pages (PSE)
    Pae,       // 3-level, 4K/2M
    Long4,     // 4-level, 4K/2M/1G
    Long5,     // 5-level
};

// The paging mode the control registers select: CR0.PG (bit 31), CR4.PAE
// (bit 5), CR4.LA57 (bit 12), EFER.LMA (bit 10).
//
// CR4.PSE (bit 4) does not change the result: Legacy32 always honours the PS
// bit of a PDE (4M pages, with PSE-36 address bits). With CR4.PSE clear the
// CPU ignores that bit, but no OS sets it then.
PagingMode paging_mode(uint64_t cr0, uint64_t cr4, uint64_t efer);

// The process identity used everywhere PyREBox names an address space: CR3
// without its flag and PCID bits. For long modes `cr3 & 0x000FFFFFFFFFF000`,
// and with `kpti` also bit 12 cleared, because Linux KPTI gives each process
// a kernel and a user PGD in one 8K-aligned pair and switches between them on
// every kernel entry. PAE: `cr3 & 0xFFFFFFE0`; Legacy32: `cr3 & 0xFFFFF000`,
// with `kpti` bit 12 cleared too (i386 KPTI keeps the same 8K pair; without
// KPTI a PAE pgd is any 32-byte block, so the bit is its own);
// None: 0 (there is one address space).
uint64_t normalize_pgd(uint64_t cr3, PagingMode mode, bool kpti);

}  // namespace pyrebox
