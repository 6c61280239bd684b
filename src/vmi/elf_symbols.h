// The dynamic symbols of an ELF image as it sits in a process's memory: the
// ELF header at the image's base, its program headers, PT_DYNAMIC, and from
// there DT_SYMTAB / DT_STRTAB / DT_STRSZ, with DT_GNU_HASH or DT_HASH for
// the number of symbols (DT_VERSYM, when present, marks hidden versions).
//
// Everything is read through a `read` function (a virtual address space),
// so the same code runs on a guest process and on synthetic memory. A read
// that fails (a page not present yet) makes the whole parse fail: symbols
// are given complete or not at all, never partly.
//
// The dynamic loader may have rewritten the d_ptr values of the dynamic
// section in place to absolute addresses (glibc does); both forms are
// accepted. Only 64-bit little-endian images are parsed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/expected.h"

namespace pyrebox::vmi {

// Reads `len` bytes at virtual address `va`; false when any of them cannot
// be read.
using ReadVirtualFn = std::function<bool(uint64_t va, void* buf, size_t len)>;

struct ElfSymbol {
    std::string name;
    uint64_t value = 0;  // st_value: a link-time address (add the load bias)
    uint64_t size = 0;   // st_size
    uint8_t type = 0;    // STT_*
    uint8_t binding = 0; // STB_*
    bool hidden = false; // a non-default version (DT_VERSYM bit 15)
};

// A module's symbols, sorted by value; lookups by name and by address.
class SymbolSet {
public:
    SymbolSet() = default;
    explicit SymbolSet(std::vector<ElfSymbol> symbols);

    const std::vector<ElfSymbol>& symbols() const { return symbols_; }

    // The preferred symbol of that name (a default version first), or null.
    const ElfSymbol* find(const std::string& name) const;
    // The symbol whose [value, value + size) holds `value` (a size-0 symbol
    // holds its own value only); among several, the preferred name. Null
    // when none does.
    const ElfSymbol* containing(uint64_t value) const;
    // The symbol with the highest value <= `value` (the preferred name among
    // equals); null when there is none.
    const ElfSymbol* preceding(uint64_t value) const;

    // Whether `a` is a better name than `b` for the same address: a default
    // version, fewer leading underscores, global over weak, shorter, then
    // alphabetical ("getpid" before "__getpid").
    static bool preferred(const ElfSymbol& a, const ElfSymbol& b);

private:
    std::vector<ElfSymbol> symbols_;
    std::unordered_map<std::string, size_t> by_name_;
};

struct ElfImage {
    bool is_elf = false;       // false: no ELF header at the base (no symbols)
    bool relocatable = false;  // ET_DYN: addresses are load bias + value
    // The lowest PT_LOAD p_vaddr, rounded down to a page: the image's base
    // maps it, so load bias = base - first_vaddr for ET_DYN, 0 for ET_EXEC.
    uint64_t first_vaddr = 0;
    // Defined symbols (st_shndx not SHN_UNDEF nor SHN_ABS) with a name;
    // no section, file or TLS symbols.
    SymbolSet symbols;

    uint64_t bias(uint64_t base) const { return relocatable ? base - first_vaddr : 0; }
};

// Limits on what a parse reads (a corrupt image cannot make it read more).
constexpr uint64_t kMaxElfSymbols = 1u << 20;
constexpr uint64_t kMaxElfStrtab = 64u << 20;

// Parses the image mapped at [base, base + size). Errors say what could
// not be read or what is malformed.
Expected<ElfImage> read_elf_dynamic_symbols(const ReadVirtualFn& read, uint64_t base,
                                            uint64_t size);

}  // namespace pyrebox::vmi
