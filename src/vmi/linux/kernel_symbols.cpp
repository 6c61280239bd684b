// The kernel's own symbols: vmlinux's from the ISF symbol table (slid), each
// loaded module's from its kallsyms in guest memory.
#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "base/hex.h"
#include "vmi/linux/kernel_locator.h"
#include "vmi/linux/linux_kernel.h"

namespace pyrebox::vmi::linux_guest {

namespace {

// Bounds on one module's kallsyms, whatever the guest claims. The biggest
// modules Debian builds (GPU drivers) have a few tens of thousands of
// symbols; names are at most KSYM_NAME_LEN (512) bytes.
constexpr uint64_t kMaxModuleSymbols = 1u << 17;
constexpr size_t kMaxNameLength = 512;
constexpr size_t kMaxNameBytes = 16u << 20;  // all names of one module
// What the kallsyms cache keeps: modules, and symbols over all of them.
constexpr size_t kMaxCachedModules = 512;
constexpr size_t kMaxCachedSymbols = 1u << 20;

// Kernel virtual memory read a page at a time, each page once.
class PageCache {
public:
    PageCache(PhysicalMemory& mem, PagingMode mode, uint64_t pgd)
        : mem_(mem), mode_(mode), pgd_(pgd) {}

    bool read(uint64_t va, void* buf, size_t len) {
        auto* out = static_cast<uint8_t*>(buf);
        while (len > 0) {
            const auto* page = get(va & ~0xFFFull);
            if (page == nullptr) {
                return false;
            }
            const size_t off = va & 0xFFF;
            const size_t n = std::min(len, size_t{4096} - off);
            std::memcpy(out, page->data() + off, n);
            out += n;
            va += n;
            len -= n;
        }
        return true;
    }

    // A NUL-terminated string of at most `max` bytes; nullopt when
    // unreadable or not terminated.
    std::optional<std::string> cstring(uint64_t va, size_t max) {
        std::string s;
        while (s.size() < max) {
            const auto* page = get((va + s.size()) & ~0xFFFull);
            if (page == nullptr) {
                return std::nullopt;
            }
            const size_t off = (va + s.size()) & 0xFFF;
            const char* p = reinterpret_cast<const char*>(page->data()) + off;
            const size_t n = strnlen(p, 4096 - off);
            s.append(p, n);
            if (n < 4096 - off) {
                return s;
            }
        }
        return std::nullopt;
    }

private:
    const std::array<uint8_t, 4096>* get(uint64_t page) {
        auto it = pages_.find(page);
        if (it != pages_.end()) {
            return it->second ? &*it->second : nullptr;
        }
        if (pages_.size() >= kMaxPages) {
            pages_.clear();  // a bound on memory, not a cache policy: reads go on
        }
        std::optional<std::array<uint8_t, 4096>> data(std::in_place);
        if (!read_virtual(mem_, mode_, pgd_, page, data->data(), 4096)) {
            data.reset();
        }
        auto& slot = pages_.emplace(page, std::move(data)).first->second;
        return slot ? &*slot : nullptr;
    }

    static constexpr size_t kMaxPages = 4096;  // 16 MiB

    PhysicalMemory& mem_;
    PagingMode mode_;
    uint64_t pgd_;
    std::map<uint64_t, std::optional<std::array<uint8_t, 4096>>> pages_;
};

Expected<SymbolSet> read_module_kallsyms(PageCache& r, uint64_t module, uint64_t syms,
                                         uint32_t count, uint64_t strs);

}  // namespace

Expected<std::shared_ptr<const SymbolSet>> LinuxKernel::vmlinux_symbols() const {
    if (!location_) {
        return Error{"the Linux kernel has not been located in guest memory yet"};
    }
    if (vmlinux_symbols_) {
        return vmlinux_symbols_;
    }
    const uint64_t slide = location_->virt_slide;
    const uint64_t moves = image_link_base();
    std::vector<ElfSymbol> symbols;
    symbols.reserve(symbols_.symbol_count());
    symbols_.for_each_symbol([&](const std::string& name, uint64_t address) {
        ElfSymbol s;
        s.name = name;
        s.value = address >= moves ? address + slide : address;
        symbols.push_back(std::move(s));
    });
    vmlinux_symbols_ = std::make_shared<const SymbolSet>(std::move(symbols));
    return vmlinux_symbols_;
}

// What a module's kallsyms read gave, by the pointers and count it was read
// from (struct module, mod_kallsyms, symtab, num_symtab, strtab): once a
// module is initialised these do not change, so neither does the answer
// (do_init_module moves kallsyms to the core table: a new key).
struct LinuxKernel::KallsymsCache {
    using Key = std::tuple<uint64_t, uint64_t, uint64_t, uint32_t, uint64_t>;
    struct Answer {
        std::shared_ptr<const SymbolSet> symbols;  // null: `error`
        std::string error;
    };
    std::mutex lock;
    std::map<Key, Answer> answers;
    size_t symbols = 0;
};

std::shared_ptr<LinuxKernel::KallsymsCache> LinuxKernel::fresh_kallsyms_cache() {
    return std::make_shared<KallsymsCache>();
}

Expected<std::shared_ptr<const SymbolSet>> LinuxKernel::module_kallsyms(PhysicalMemory& mem,
                                                                        uint64_t module) const {
    if (!location_) {
        return Error{"the Linux kernel has not been located in guest memory yet"};
    }
    const auto kallsyms = symbols_.member_offset("module", "kallsyms");
    const auto symtab = symbols_.member_offset("mod_kallsyms", "symtab");
    const auto num = symbols_.member_offset("mod_kallsyms", "num_symtab");
    const auto strtab = symbols_.member_offset("mod_kallsyms", "strtab");
    if (!kallsyms || !symtab || !num || !strtab) {
        return Error{"the Linux symbol table does not describe module kallsyms "
                     "(struct module.kallsyms, struct mod_kallsyms)"};
    }
    PageCache r(mem, mode_, location_->pgd_paddr);
    uint64_t table = 0, syms = 0, strs = 0;
    uint32_t count = 0;
    if (!r.read(module + *kallsyms, &table, 8) || table == 0 ||
        !r.read(table + *symtab, &syms, 8) || !r.read(table + *num, &count, 4) ||
        !r.read(table + *strtab, &strs, 8)) {
        return Error{"cannot read the kallsyms of the struct module at " + hex(module)};
    }
    const KallsymsCache::Key key{module, table, syms, count, strs};
    KallsymsCache& cache = *kallsyms_cache_;
    {
        std::lock_guard<std::mutex> guard(cache.lock);
        if (auto it = cache.answers.find(key); it != cache.answers.end()) {
            if (!it->second.symbols) {
                return Error{it->second.error};
            }
            return it->second.symbols;
        }
    }
    auto read = read_module_kallsyms(r, module, syms, count, strs);
    KallsymsCache::Answer answer;
    if (read) {
        answer.symbols = std::make_shared<const SymbolSet>(std::move(*read));
    } else {
        answer.error = read.error();
    }
    std::lock_guard<std::mutex> guard(cache.lock);
    const size_t added = answer.symbols ? answer.symbols->symbols().size() : 0;
    if (cache.answers.size() >= kMaxCachedModules || cache.symbols + added > kMaxCachedSymbols) {
        cache.answers.clear();  // modules come and go: start again
        cache.symbols = 0;
    }
    cache.answers.emplace(key, answer);
    cache.symbols += added;
    if (!answer.symbols) {
        return Error{answer.error};
    }
    return answer.symbols;
}

namespace {

// The symbols of a module's kallsyms table, bounded (see the limits above).
Expected<SymbolSet> read_module_kallsyms(PageCache& r, uint64_t module, uint64_t syms,
                                         uint32_t count, uint64_t strs) {
    if (count > kMaxModuleSymbols) {
        return Error{"the struct module at " + hex(module) + " claims " + std::to_string(count) +
                     " symbols (at most " + std::to_string(kMaxModuleSymbols) +
                     " are read: no kernel module has that many)"};
    }
    std::vector<ElfSymbol> out;
    out.reserve(count);
    size_t name_bytes = 0;
    for (uint32_t i = 1; i < count; ++i) {
        uint8_t sym[24];
        if (!r.read(syms + 24ull * i, sym, sizeof sym)) {
            return Error{"cannot read symbol " + std::to_string(i) + " of the struct module at " +
                         hex(module)};
        }
        uint32_t name_off = 0;
        uint16_t shndx = 0;
        ElfSymbol s;
        std::memcpy(&name_off, sym, 4);
        std::memcpy(&shndx, sym + 6, 2);
        std::memcpy(&s.value, sym + 8, 8);
        std::memcpy(&s.size, sym + 16, 8);
        s.type = sym[4] & 0xf;
        s.binding = sym[4] >> 4;
        if (shndx == 0 || s.value == 0) {
            continue;  // undefined
        }
        auto name = r.cstring(strs + name_off, kMaxNameLength);
        if (!name) {
            return Error{"cannot read the name of symbol " + std::to_string(i) +
                         " of the struct module at " + hex(module)};
        }
        if (name->empty()) {
            continue;
        }
        name_bytes += name->size();
        if (name_bytes > kMaxNameBytes) {
            return Error{"the symbol names of the struct module at " + hex(module) +
                         " are more than " + std::to_string(kMaxNameBytes >> 20) +
                         " MiB (no kernel module has that much)"};
        }
        s.name = std::move(*name);
        out.push_back(std::move(s));
    }
    return SymbolSet(std::move(out));
}

}  // namespace

}  // namespace pyrebox::vmi::linux_guest
