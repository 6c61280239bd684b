// Finding a running x86-64 Linux kernel in guest physical memory (KASLR).
//
// With KASLR the kernel image is loaded at a random physical address and
// mapped at a random virtual address, each 2 MiB aligned and chosen
// independently. For a symbol linked at `a` (its ISF address) in the kernel
// image:
//
//     virtual  address at run time = a + virt_slide
//     physical address             = a - __START_KERNEL_map + phys_slide
//
// (__START_KERNEL_map = 0xffffffff80000000; the kernel's own `phys_base` is
// phys_slide - virt_slide). Without KASLR (`nokaslr`) both slides are 0.
//
// How it is found: `linux_banner` is looked for in physical memory where it
// can be (the kernel is 2 MiB aligned, so at addresses congruent to its
// linked offset modulo 2 MiB, then, if not found there, at every 4 KiB page);
// that gives phys_slide, hence the physical address of the kernel's page
// tables (`init_top_pgt`); the virtual slide is the one, among the 2 MiB
// steps that keep the image inside the kernel-image region (1 GiB above
// __START_KERNEL_map), whose `linux_banner` those tables map to the banner
// that was found. A banner-like string at a place the page tables do not
// confirm (a copy in the log buffer, say) is passed over.
#pragma once

#include <cstdint>

#include "base/expected.h"
#include "vmi/isf.h"
#include "vmi/paging.h"

namespace pyrebox::vmi::linux_guest {

constexpr uint64_t kStartKernelMap = 0xffffffff80000000ull;
// The direct map's base when the kernel does not randomise it.
constexpr uint64_t kDefaultPageOffset4 = 0xffff888000000000ull;  // 4-level paging
constexpr uint64_t kDefaultPageOffset5 = 0xff11000000000000ull;  // 5-level paging

struct KernelLocation {
    // Both added modulo 2^64 (see above).
    uint64_t phys_slide = 0;
    uint64_t virt_slide = 0;
    // Physical address of the kernel's top-level page table (init_top_pgt,
    // or init_level4_pgt on kernels older than 4.13): a pgd for translate()
    // that maps the kernel half of the address space.
    uint64_t pgd_paddr = 0;
    // Physical address of linux_banner.
    uint64_t banner_paddr = 0;
    // Base of the direct map of all physical memory (PAGE_OFFSET): the
    // kernel variable `page_offset_base` (randomised with KASLR), or the
    // fixed default when the kernel has no such variable.
    uint64_t page_offset_base = 0;
};

// Finds the kernel described by `symbols` in `mem`. `ram_size` is the
// guest's RAM size in bytes (QEMU's -m); the scan covers [0, ram_size) and,
// for more than 2 GiB, the RAM that PC machines place above 4 GiB too.
// `mode` is the paging mode the kernel runs in (Long4, or Long5 with LA57).
//
// Errors (each names what was expected and what was found): an ISF without
// linux_banner or init_top_pgt/init_level4_pgt, or with a 32-bit layout;
// no banner in memory ("kernel banner not found ...: expected ..."), a
// different kernel's banner where this one's should be ("found 'Linux
// version 5.10...' where 'Linux version 6.1...' was expected"), or a banner
// that no virtual slide maps to, or that the tables map only at slides the
// kernel's data refute ("... but the kernel's page tables and data do not
// agree yet ...: virtual slide 0x...: init_mm.pgd holds ...": the kernel is
// still starting, or the ISF is for another build with the same banner).
Expected<KernelLocation> locate_kernel(const SymbolTable& symbols, PhysicalMemory& mem,
                                       uint64_t ram_size, PagingMode mode = PagingMode::Long4);

// Whether `loc` is still where the kernel is: linux_banner at
// loc.banner_paddr and mapped there through loc.pgd_paddr at the virtual
// slide, init_mm.pgd equal to init_top_pgt's slid address, and init_task
// self-consistent (its tasks list's next and prev are kernel addresses that
// point back to it, its mm is NULL, its comm starts with "swapper"). The
// init_mm and init_task checks need those symbols and members in the ISF
// and are skipped without them. The error names the first check that fails.
Expected<bool> verify_location(const SymbolTable& symbols, PhysicalMemory& mem, PagingMode mode,
                               const KernelLocation& loc);

// Reads `page_offset_base` from the kernel image (physical read at its
// slid address); the default for `mode` when the ISF has no such symbol.
Expected<uint64_t> read_page_offset_base(const SymbolTable& symbols, PhysicalMemory& mem,
                                         uint64_t phys_slide, PagingMode mode);

}  // namespace pyrebox::vmi::linux_guest
