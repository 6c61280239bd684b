#include "vmi/linux/user_symbols.h"

namespace pyrebox::vmi::linux_guest {

std::shared_ptr<const ElfImage> UserSymbolCache::get(PhysicalMemory& mem, PagingMode mode,
                                                     uint64_t pgd, const Module& module) {
    if (module.base_pgoff != 0) {
        return nullptr;  // the file's start (its ELF header) is not at the base
    }
    const Key key{module.inode, module.dev, module.file_size, module.mtime_sec,
                  module.mtime_nsec};
    if (module.inode != 0) {
        if (auto it = cache_.find(key); it != cache_.end()) {
            return it->second;
        }
    }
    const ReadVirtualFn read = [&](uint64_t va, void* buf, size_t len) {
        return read_virtual(mem, mode, pgd, va, buf, len).ok();
    };
    auto image = read_elf_dynamic_symbols(read, module.base, module.size);
    if (!image) {
        return nullptr;
    }
    auto shared = std::make_shared<const ElfImage>(std::move(*image));
    if (module.inode != 0) {
        cache_.emplace(key, shared);
    }
    return shared;
}

}  // namespace pyrebox::vmi::linux_guest
