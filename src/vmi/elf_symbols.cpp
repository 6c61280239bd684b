#include "vmi/elf_symbols.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "base/hex.h"

namespace pyrebox::vmi {

namespace {

constexpr uint16_t kEtExec = 2, kEtDyn = 3;
constexpr uint32_t kPtLoad = 1, kPtDynamic = 2;
constexpr int64_t kDtNull = 0, kDtHash = 4, kDtStrtab = 5, kDtSymtab = 6, kDtStrsz = 10,
                  kDtSyment = 11, kDtGnuHash = 0x6ffffef5, kDtVersym = 0x6ffffff0;
constexpr uint16_t kShnUndef = 0, kShnAbs = 0xfff1;
constexpr uint8_t kSttSection = 3, kSttFile = 4, kSttTls = 6;
constexpr uint8_t kStbWeak = 2;
constexpr size_t kSymSize = 24;  // Elf64_Sym
constexpr uint64_t kMaxDynamic = 64 * 1024;
constexpr uint64_t kMaxProgramHeaders = 64 * 1024;

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

size_t leading_underscores(const std::string& s) {
    size_t n = 0;
    while (n < s.size() && s[n] == '_') {
        ++n;
    }
    return n;
}

}  // namespace

bool SymbolSet::preferred(const ElfSymbol& a, const ElfSymbol& b) {
    if (a.hidden != b.hidden) {
        return !a.hidden;
    }
    const size_t ua = leading_underscores(a.name), ub = leading_underscores(b.name);
    if (ua != ub) {
        return ua < ub;
    }
    const bool wa = a.binding == kStbWeak, wb = b.binding == kStbWeak;
    if (wa != wb) {
        return !wa;
    }
    if (a.name.size() != b.name.size()) {
        return a.name.size() < b.name.size();
    }
    return a.name < b.name;
}

SymbolSet::SymbolSet(std::vector<ElfSymbol> symbols) : symbols_(std::move(symbols)) {
    std::stable_sort(symbols_.begin(), symbols_.end(), [](const ElfSymbol& a, const ElfSymbol& b) {
        return a.value != b.value ? a.value < b.value : preferred(a, b);
    });
    by_name_.reserve(symbols_.size());
    for (size_t i = 0; i < symbols_.size(); ++i) {
        auto [it, fresh] = by_name_.try_emplace(symbols_[i].name, i);
        if (!fresh && symbols_[it->second].hidden && !symbols_[i].hidden) {
            it->second = i;
        }
    }
}

const ElfSymbol* SymbolSet::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &symbols_[it->second];
}

const ElfSymbol* SymbolSet::containing(uint64_t value) const {
    // Symbols are sorted by value; look back from the last one at or below
    // `value` while a containing symbol is still possible. Sizes are small
    // against the gaps, but a big object may cover many symbols: scan at
    // most a bounded window back.
    auto end = std::upper_bound(symbols_.begin(), symbols_.end(), value,
                                [](uint64_t v, const ElfSymbol& s) { return v < s.value; });
    const ElfSymbol* best = nullptr;
    size_t scanned = 0;
    for (auto it = end; it != symbols_.begin() && scanned < 4096; ++scanned) {
        --it;
        if (best != nullptr && it->value < best->value) {
            break;  // the innermost (highest-starting) containing symbol wins
        }
        const bool holds = it->size == 0 ? it->value == value : value - it->value < it->size;
        if (holds && (best == nullptr || preferred(*it, *best))) {
            best = &*it;
        }
    }
    return best;
}

const ElfSymbol* SymbolSet::preceding(uint64_t value) const {
    auto end = std::upper_bound(symbols_.begin(), symbols_.end(), value,
                                [](uint64_t v, const ElfSymbol& s) { return v < s.value; });
    if (end == symbols_.begin()) {
        return nullptr;
    }
    // The first of the run of equal values is the preferred one.
    const uint64_t at = std::prev(end)->value;
    auto first = std::lower_bound(symbols_.begin(), end, at,
                                  [](const ElfSymbol& s, uint64_t v) { return s.value < v; });
    return &*first;
}

Expected<ElfImage> read_elf_dynamic_symbols(const ReadVirtualFn& read, uint64_t base,
                                            uint64_t size) {
    auto fetch = [&](uint64_t va, size_t len, const char* what,
                     std::vector<uint8_t>& out) -> Expected<bool> {
        out.resize(len);
        if (len != 0 && !read(va, out.data(), len)) {
            return Error{std::string("cannot read the ") + what + " at " + hex(va) + " (" +
                         std::to_string(len) + " bytes)"};
        }
        return true;
    };
    ElfImage image;
    std::vector<uint8_t> ehdr;
    if (auto r = fetch(base, 64, "ELF header", ehdr); !r) {
        return Error{r.error()};
    }
    if (std::memcmp(ehdr.data(), "\x7f" "ELF", 4) != 0) {
        return image;  // not an ELF image: no symbols
    }
    if (ehdr[4] != 2 || ehdr[5] != 1) {
        return Error{"the ELF image at " + hex(base) + " is not 64-bit little-endian"};
    }
    const uint16_t type = load<uint16_t>(&ehdr[16]);
    const uint64_t phoff = load<uint64_t>(&ehdr[32]);
    const uint16_t phentsize = load<uint16_t>(&ehdr[54]);
    const uint16_t phnum = load<uint16_t>(&ehdr[56]);
    if (type != kEtExec && type != kEtDyn) {
        return Error{"the ELF image at " + hex(base) + " has type " + std::to_string(type) +
                     ", not an executable or shared object"};
    }
    // As the kernel's loader takes them (load_elf_phdrs): entries of the
    // ELF64 size, 64 KiB of them at most, inside the mapped image. Checked
    // before anything is read: the header is the guest's to forge.
    if (phentsize != 56 || phnum == 0 || size_t{phentsize} * phnum > kMaxProgramHeaders ||
        phoff >= size || size - phoff < size_t{phentsize} * phnum) {
        return Error{"the ELF image at " + hex(base) + " has no usable program headers (" +
                     std::to_string(phnum) + " of " + std::to_string(phentsize) +
                     " bytes at offset " + hex(phoff) + ")"};
    }
    image.is_elf = true;
    image.relocatable = type == kEtDyn;
    std::vector<uint8_t> phdrs;
    if (auto r = fetch(base + phoff, size_t{phentsize} * phnum, "program headers", phdrs); !r) {
        return Error{r.error()};
    }
    uint64_t first_vaddr = UINT64_MAX, dyn_vaddr = 0, dyn_size = 0;
    bool has_dynamic = false;
    for (size_t i = 0; i < phnum; ++i) {
        const uint8_t* ph = &phdrs[i * phentsize];
        const uint32_t p_type = load<uint32_t>(ph);
        const uint64_t p_vaddr = load<uint64_t>(ph + 16);
        if (p_type == kPtLoad) {
            first_vaddr = std::min(first_vaddr, p_vaddr & ~uint64_t{0xFFF});
        } else if (p_type == kPtDynamic) {
            has_dynamic = true;
            dyn_vaddr = p_vaddr;
            dyn_size = load<uint64_t>(ph + 40);  // p_memsz
        }
    }
    if (first_vaddr == UINT64_MAX) {
        return Error{"the ELF image at " + hex(base) + " has no PT_LOAD segment"};
    }
    image.first_vaddr = first_vaddr;
    if (!image.relocatable && first_vaddr != base) {
        return Error{"the executable mapped at " + hex(base) + " is linked at " +
                     hex(first_vaddr)};
    }
    if (!has_dynamic) {
        return image;  // a static image: no dynamic symbols
    }
    const uint64_t bias = image.bias(base);
    // d_ptr values: absolute when the loader rewrote them (inside the
    // image's mapping), else link-time addresses.
    auto address = [&](uint64_t ptr) {
        return (ptr >= base && ptr - base < size) ? ptr : ptr + bias;
    };
    std::vector<uint8_t> dyn;
    if (auto r = fetch(bias + dyn_vaddr, std::min(dyn_size, kMaxDynamic) & ~15ull,
                       "dynamic section", dyn);
        !r) {
        return Error{r.error()};
    }
    uint64_t symtab = 0, strtab = 0, strsz = 0, syment = kSymSize, hash = 0, gnu_hash = 0,
             versym = 0;
    for (size_t off = 0; off + 16 <= dyn.size(); off += 16) {
        const int64_t tag = load<int64_t>(&dyn[off]);
        const uint64_t val = load<uint64_t>(&dyn[off + 8]);
        if (tag == kDtNull) {
            break;
        }
        switch (tag) {
            case kDtSymtab: symtab = address(val); break;
            case kDtStrtab: strtab = address(val); break;
            case kDtStrsz: strsz = val; break;
            case kDtSyment: syment = val; break;
            case kDtHash: hash = address(val); break;
            case kDtGnuHash: gnu_hash = address(val); break;
            case kDtVersym: versym = address(val); break;
            default: break;
        }
    }
    if (symtab == 0 || strtab == 0) {
        return image;  // no dynamic symbol table
    }
    if (syment < kSymSize || syment > 256) {
        return Error{"the ELF image at " + hex(base) + " has DT_SYMENT " + std::to_string(syment)};
    }
    if (strsz == 0 || strsz > kMaxElfStrtab) {
        return Error{"the ELF image at " + hex(base) + " has DT_STRSZ " + std::to_string(strsz)};
    }

    // The number of symbols.
    uint64_t count = 0;
    std::vector<uint8_t> buf;
    if (gnu_hash != 0) {
        if (auto r = fetch(gnu_hash, 16, "GNU hash table", buf); !r) {
            return Error{r.error()};
        }
        const uint32_t nbuckets = load<uint32_t>(&buf[0]);
        const uint32_t symoffset = load<uint32_t>(&buf[4]);
        const uint32_t bloom_size = load<uint32_t>(&buf[8]);
        if (nbuckets > kMaxElfSymbols || bloom_size > kMaxElfSymbols) {
            return Error{"the GNU hash table at " + hex(gnu_hash) + " is corrupt"};
        }
        const uint64_t buckets_at = gnu_hash + 16 + 8ull * bloom_size;
        std::vector<uint8_t> buckets;
        if (auto r = fetch(buckets_at, 4ull * nbuckets, "GNU hash buckets", buckets); !r) {
            return Error{r.error()};
        }
        uint32_t last = 0;
        for (uint32_t i = 0; i < nbuckets; ++i) {
            last = std::max(last, load<uint32_t>(&buckets[4ull * i]));
        }
        if (last < symoffset) {
            count = symoffset;
        } else {
            const uint64_t chains_at = buckets_at + 4ull * nbuckets;
            for (uint64_t index = last;; ++index) {
                if (index - symoffset > kMaxElfSymbols) {
                    return Error{"the GNU hash chain at " + hex(chains_at) + " does not end"};
                }
                uint32_t chain = 0;
                if (!read(chains_at + 4 * (index - symoffset), &chain, 4)) {
                    return Error{"cannot read the GNU hash chains at " + hex(chains_at)};
                }
                if (chain & 1) {
                    count = index + 1;
                    break;
                }
            }
        }
    } else if (hash != 0) {
        if (auto r = fetch(hash, 8, "hash table", buf); !r) {
            return Error{r.error()};
        }
        count = load<uint32_t>(&buf[4]);  // nchain
    } else if (strtab > symtab) {
        count = (strtab - symtab) / syment;  // the usual layout: .dynstr follows .dynsym
    } else {
        return Error{"the ELF image at " + hex(base) + " has no hash table to count its symbols"};
    }
    if (count > kMaxElfSymbols) {
        return Error{"the ELF image at " + hex(base) + " claims " + std::to_string(count) +
                     " dynamic symbols"};
    }

    std::vector<uint8_t> syms, strs, vers;
    if (auto r = fetch(symtab, count * syment, "dynamic symbol table", syms); !r) {
        return Error{r.error()};
    }
    if (auto r = fetch(strtab, strsz, "dynamic string table", strs); !r) {
        return Error{r.error()};
    }
    if (versym != 0) {
        if (auto r = fetch(versym, count * 2, "symbol version table", vers); !r) {
            return Error{r.error()};
        }
    }
    std::vector<ElfSymbol> out;
    out.reserve(count);
    for (uint64_t i = 1; i < count; ++i) {
        const uint8_t* s = &syms[i * syment];
        const uint32_t name = load<uint32_t>(s);
        const uint8_t info = s[4];
        const uint16_t shndx = load<uint16_t>(s + 6);
        const uint8_t stype = info & 0xf;
        if (shndx == kShnUndef || shndx == kShnAbs || stype == kSttSection ||
            stype == kSttFile || stype == kSttTls || name >= strs.size()) {
            continue;
        }
        const char* text = reinterpret_cast<const char*>(&strs[name]);
        const size_t len = strnlen(text, strs.size() - name);
        if (len == 0 || name + len >= strs.size()) {
            continue;  // empty, or not terminated inside the table
        }
        ElfSymbol sym;
        sym.name.assign(text, len);
        sym.value = load<uint64_t>(s + 8);
        sym.size = load<uint64_t>(s + 16);
        sym.type = stype;
        sym.binding = info >> 4;
        sym.hidden = !vers.empty() && (load<uint16_t>(&vers[2 * i]) & 0x8000) != 0;
        out.push_back(std::move(sym));
    }
    image.symbols = SymbolSet(std::move(out));
    return image;
}

}  // namespace pyrebox::vmi
