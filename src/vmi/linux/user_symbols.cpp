#include "vmi/linux/user_symbols.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

namespace pyrebox::vmi::linux_guest {

namespace {

constexpr uint64_t kPage = 4096;

// An ELF image as a process maps it, read through the process's page
// tables and, where a page is not present there, from the page cache of
// the file: a file's pages are in memory before a process touches them
// (right after its mmap, at LOADMODULE) when another process read them or
// the file lives in a tmpfs or the initramfs. An address of the mapping is
// turned into a file offset by the file's PT_LOAD segments.
class MappedImage {
public:
    MappedImage(const LinuxKernel& kernel, PhysicalMemory& mem, PagingMode mode, uint64_t pgd,
                const Module& module)
        : kernel_(kernel), mem_(mem), mode_(mode), pgd_(pgd), m_(module) {}

    bool read(uint64_t va, void* buf, size_t len) {
        auto* out = static_cast<uint8_t*>(buf);
        while (len > 0) {
            const size_t n = std::min<uint64_t>(len, kPage - (va & (kPage - 1)));
            if (!read_virtual(mem_, mode_, pgd_, va, out, n).ok() && !read_file(va, out, n)) {
                return false;
            }
            out += n;
            va += n;
            len -= n;
        }
        return true;
    }

private:
    struct Segment {
        uint64_t vaddr, offset, filesz;
    };

    // [va, va + n), inside one page of the mapping, from the page cache.
    bool read_file(uint64_t va, uint8_t* out, size_t n) {
        if (m_.file == 0) {
            return false;
        }
        while (n > 0) {
            auto offset = file_offset(va);
            if (!offset) {
                return false;
            }
            const size_t piece = std::min<uint64_t>(n, kPage - (*offset & (kPage - 1)));
            if (!read_file_bytes(*offset, out, piece)) {
                return false;
            }
            out += piece;
            va += piece;
            n -= piece;
        }
        return true;
    }

    bool read_file_bytes(uint64_t offset, uint8_t* out, size_t n) {
        auto page = kernel_.file_page_address(mem_, m_.file, offset / kPage);
        return page.ok() && page->has_value() &&
               mem_.read(**page + (offset & (kPage - 1)), out, n);
    }

    // The file offset that address `va` of the mapping holds.
    std::optional<uint64_t> file_offset(uint64_t va) {
        if (!segments_) {
            segments_ = load_segments();
        }
        for (const auto& s : *segments_) {
            if (va >= bias_ + s.vaddr && va - (bias_ + s.vaddr) < s.filesz) {
                return s.offset + (va - (bias_ + s.vaddr));
            }
        }
        if (va >= m_.base && va - m_.base < kPage) {
            return va - m_.base;  // the first page maps the file's start (base_pgoff 0)
        }
        return std::nullopt;
    }

    // The PT_LOAD segments, from the file's header (none when it does not
    // read or is not a 64-bit ELF file).
    std::vector<Segment> load_segments() {
        std::vector<Segment> out;
        uint8_t ehdr[64];
        if (!read_file_bytes(0, ehdr, sizeof ehdr) || std::memcmp(ehdr, "\x7f" "ELF", 4) != 0 ||
            ehdr[4] != 2) {
            return out;
        }
        uint16_t type, phentsize, phnum;
        uint64_t phoff;
        std::memcpy(&type, ehdr + 16, 2);
        std::memcpy(&phoff, ehdr + 32, 8);
        std::memcpy(&phentsize, ehdr + 54, 2);
        std::memcpy(&phnum, ehdr + 56, 2);
        if (phentsize != 56 || phnum == 0 || phnum > 1024 || phoff > kPage * 16) {
            return out;
        }
        std::vector<uint8_t> phdrs(size_t{phnum} * phentsize);
        for (size_t done = 0; done < phdrs.size();) {
            const uint64_t at = phoff + done;
            const size_t n = std::min<uint64_t>(phdrs.size() - done, kPage - (at & (kPage - 1)));
            if (!read_file_bytes(at, phdrs.data() + done, n)) {
                return out;
            }
            done += n;
        }
        uint64_t first = UINT64_MAX;
        for (size_t i = 0; i < phnum; ++i) {
            const uint8_t* ph = &phdrs[i * phentsize];
            uint32_t p_type;
            Segment s;
            std::memcpy(&p_type, ph, 4);
            std::memcpy(&s.offset, ph + 8, 8);
            std::memcpy(&s.vaddr, ph + 16, 8);
            std::memcpy(&s.filesz, ph + 32, 8);
            if (p_type == 1) {  // PT_LOAD
                out.push_back(s);
                first = std::min(first, s.vaddr & ~(kPage - 1));
            }
        }
        bias_ = (type == 3 && first != UINT64_MAX) ? m_.base - first : 0;  // ET_DYN
        return out;
    }

    const LinuxKernel& kernel_;
    PhysicalMemory& mem_;
    PagingMode mode_;
    uint64_t pgd_;
    const Module& m_;
    std::optional<std::vector<Segment>> segments_;
    uint64_t bias_ = 0;
};

}  // namespace

std::shared_ptr<const ElfImage> UserSymbolCache::get(const LinuxKernel& kernel,
                                                     PhysicalMemory& mem, uint64_t pgd,
                                                     const Module& module) {
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
    MappedImage image_memory(kernel, mem, kernel.mode(), pgd, module);
    const ReadVirtualFn read = [&](uint64_t va, void* buf, size_t len) {
        return image_memory.read(va, buf, len);
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
