// The dynamic symbols of the files a process maps, parsed from the
// process's memory (read_elf_dynamic_symbols) and kept per file identity
// (inode number, device, size and modification time), so that a library
// mapped by many processes is parsed once.
//
// A page not present in the process's page tables is read from the file's
// page cache (Module::file) when it is cached there: at LOADMODULE, right
// after the mmap, the process has touched nothing yet. A file whose pages
// are in neither is not resolved (nothing is cached; the next call tries
// again). A module without a known identity (inode 0) is parsed on every
// call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "vmi/elf_symbols.h"
#include "vmi/linux/linux_kernel.h"
#include "vmi/paging.h"

namespace pyrebox::vmi::linux_guest {

class UserSymbolCache {
public:
    // The image of `module` as mapped in the address space `pgd`; null when
    // it cannot be parsed now. Addresses are image->bias(module.base) +
    // symbol value.
    std::shared_ptr<const ElfImage> get(const LinuxKernel& kernel, PhysicalMemory& mem,
                                        uint64_t pgd, const Module& module);

    size_t size() const { return cache_.size(); }
    void clear() { cache_.clear(); }

private:
    using Key = std::tuple<uint64_t, uint64_t, uint64_t, uint64_t, uint64_t>;
    std::map<Key, std::shared_ptr<const ElfImage>> cache_;
};

}  // namespace pyrebox::vmi::linux_guest
