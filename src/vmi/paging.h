// x86 page-table walks done in software, over the guest's physical memory.
//
// This is how PyREBox reads and writes guest virtual memory of any process,
// not only the one the vCPU is running: the walk starts from that process's
// page-table root (its CR3, or the normalised pgd that identifies it) and
// never needs the guest's TLB or a vCPU.
//
// What the walk does not model, on purpose: the access rights of a particular
// access (CR0.WP, SMEP/SMAP, protection keys) and reserved-bit faults beyond
// the PS bit where the architecture forbids it. The permission bits of the
// mapping are reported in `Translation`, and the caller decides.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/expected.h"
#include "base/x86_paging.h"

namespace pyrebox::vmi {

// The physical-memory interface, PagingMode, paging_mode() and
// normalize_pgd() are x86 vocabulary shared with the engine: they live in
// base/x86_paging.h and are named here too.
using pyrebox::normalize_pgd;
using pyrebox::PagingMode;
using pyrebox::paging_mode;
using pyrebox::PhysicalMemory;

struct Translation {
    uint64_t paddr;      // the physical address of vaddr itself (page base + offset)
    uint64_t page_size;  // 4K, 2M, 4M or 1G; 4K when paging is off
    bool writable;       // R/W set at every level
    bool user;           // U/S set at every level
    bool nx;             // XD set at some level (meaningful only when EFER.NXE is set)
};

// Translates `vaddr` by walking the tables rooted at `pgd`, which may be the
// raw CR3 value or a normalised pgd (see normalize_pgd): the flag/PCID bits
// of CR3 (the low 12 bits; the low 5 for PAE) and bit 63 are ignored, and
// table entries are read with a 52-bit physical address mask.
//
// Errors: "<vaddr> is not mapped in address space <pgd> (<where the walk
// stopped>)", e.g. "(PML4E not present)", "(PDE at physical 0x... is not in
// RAM)", "(not canonical)" for long modes, "(beyond 4 GiB)" for 32-bit modes.
Expected<Translation> translate(PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                                uint64_t vaddr);

// Reads or writes `len` bytes at `vaddr`, crossing page boundaries; returns
// `len`. All-or-nothing for the mapping: every page of the range is
// translated before any byte is read or written, so an unmapped page leaves
// guest memory (and, for reads, `buf`) untouched. A physical range that turns
// out not to be RAM is reported as an error after the bytes before it were
// transferred. A range that wraps past the top of the address space is an
// error.
Expected<size_t> read_virtual(PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                              uint64_t vaddr, void* buf, size_t len);
Expected<size_t> write_virtual(PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                               uint64_t vaddr, const void* buf, size_t len);

}  // namespace pyrebox::vmi
