#include "vmi/elf_symbols.h"

#include <gtest/gtest.h>

#include "fake_ram.h"

#include <string>
#include <vector>

namespace {

using pyrebox::testing::FakeRam;
using pyrebox::vmi::ElfImage;
using pyrebox::vmi::ElfSymbol;
using pyrebox::vmi::read_elf_dynamic_symbols;
using pyrebox::vmi::ReadVirtualFn;
using pyrebox::vmi::SymbolSet;

constexpr uint64_t kBase = 0x7f0000400000;

struct Sym {
    std::string name;
    uint64_t value;
    uint64_t size;
    uint8_t type;     // STT_*
    uint8_t binding;  // STB_*
    uint16_t shndx;
    bool hidden = false;
};

// The symbols of the synthetic image (index 0 is the null symbol).
std::vector<Sym> symbols() {
    return {
        {"", 0, 0, 0, 0, 0},
        {"puts", 0, 0, 2, 1, 0},                 // undefined
        {"__getpid", 0x3000, 8, 2, 1, 14},       // GLOBAL FUNC
        {"getpid", 0x3000, 8, 2, 2, 14},         // WEAK FUNC alias
        {"data_obj", 0x3100, 0x20, 1, 1, 20},    // OBJECT
        {"GLIBC_2.2.5", 0, 0, 1, 1, 0xfff1},     // ABS version node
        {"memcpy", 0x3200, 16, 2, 1, 14, true},  // memcpy@GLIBC_2.2.5 (hidden)
        {"memcpy", 0x3300, 16, 2, 1, 14},        // memcpy@@GLIBC_2.14
        {"tls_var", 0x10, 4, 6, 1, 22},          // TLS: no address
        {"marker", 0x3400, 0, 0, 1, 14},         // NOTYPE, size 0
    };
}

struct Options {
    bool dyn = true;         // ET_DYN (else ET_EXEC linked at kBase)
    bool absolute = false;   // d_ptr values rewritten to absolute addresses
    bool gnu_hash = true;    // DT_GNU_HASH (else DT_HASH)
    bool strtab_present = true;
    bool elf = true;
};

// An image whose first PT_LOAD is linked at `link` (0 for ET_DYN): ELF
// header and program headers, .dynsym at link+0x1000, .dynstr at
// link+0x5000 (a page of its own), the hash table at link+0x1c00, .gnu.version
// at link+0x1e00, the dynamic section at link+0x2000.
FakeRam build(const Options& o) {
    FakeRam ram;
    const uint64_t link = o.dyn ? 0 : kBase;
    const uint64_t bias = kBase - link;
    const uint64_t at = kBase;  // where link address `link` is mapped
    if (!o.elf) {
        ram.put_string(at, "#!/bin/sh\n");
        return ram;
    }
    ram.put(at, 0x464c457f, 4);  // \x7fELF
    ram.put(at + 4, 2, 1);        // ELFCLASS64
    ram.put(at + 5, 1, 1);        // little-endian
    ram.put(at + 16, o.dyn ? 3 : 2, 2);
    ram.put(at + 32, 64);         // e_phoff
    ram.put(at + 54, 56, 2);      // e_phentsize
    ram.put(at + 56, 2, 2);       // e_phnum
    // PT_LOAD at link, PT_DYNAMIC at link+0x2000.
    ram.put(at + 64, 1, 4);
    ram.put(at + 64 + 16, link);
    ram.put(at + 64 + 40, 0x6000);
    ram.put(at + 120, 2, 4);
    ram.put(at + 120 + 16, link + 0x2000);
    ram.put(at + 120 + 40, 0x80);
    const auto syms = symbols();
    // .dynstr
    std::string strtab(1, '\0');
    std::vector<uint32_t> name_of;
    for (const auto& s : syms) {
        if (s.name.empty()) {
            name_of.push_back(0);
            continue;
        }
        name_of.push_back(static_cast<uint32_t>(strtab.size()));
        strtab += s.name;
        strtab += '\0';
    }
    if (o.strtab_present) {
        for (size_t i = 0; i < strtab.size(); ++i) {
            ram.put(at + 0x5000 + i, static_cast<uint8_t>(strtab[i]), 1);
        }
    }
    // .dynsym and .gnu.version
    for (size_t i = 0; i < syms.size(); ++i) {
        const uint64_t e = at + 0x1000 + 24 * i;
        ram.put(e, name_of[i], 4);
        ram.put(e + 4, (syms[i].binding << 4) | syms[i].type, 1);
        ram.put(e + 6, syms[i].shndx, 2);
        ram.put(e + 8, syms[i].value == 0 || syms[i].shndx == 0xfff1 || syms[i].type == 6
                           ? syms[i].value
                           : link + syms[i].value);
        ram.put(e + 16, syms[i].size);
        ram.put(at + 0x1e00 + 2 * i, syms[i].hidden ? 0x8002 : 1, 2);
    }
    // Hash table.
    const uint64_t h = at + 0x1c00;
    if (o.gnu_hash) {
        ram.put(h, 1, 4);       // nbuckets
        ram.put(h + 4, 1, 4);   // symoffset
        ram.put(h + 8, 1, 4);   // bloom_size
        ram.put(h + 12, 6, 4);  // bloom_shift
        ram.put(h + 16, ~0ull); // bloom
        ram.put(h + 24, 1, 4);  // bucket[0] = 1
        for (size_t i = 1; i < syms.size(); ++i) {  // chains: the last ends
            ram.put(h + 28 + 4 * (i - 1), (i * 2) | (i + 1 == syms.size() ? 1 : 0), 4);
        }
    } else {
        ram.put(h, 1, 4);                // nbucket
        ram.put(h + 4, syms.size(), 4);  // nchain = number of symbols
    }
    // Dynamic section.
    const uint64_t ptr_base = o.absolute ? bias : 0;
    const std::vector<std::pair<int64_t, uint64_t>> dyn = {
        {o.gnu_hash ? 0x6ffffef5 : 4, ptr_base + link + 0x1c00},
        {5, ptr_base + link + 0x5000},
        {6, ptr_base + link + 0x1000},
        {10, strtab.size()},
        {11, 24},
        {0x6ffffff0, ptr_base + link + 0x1e00},
        {0, 0},
    };
    for (size_t i = 0; i < dyn.size(); ++i) {
        ram.put(at + 0x2000 + 16 * i, static_cast<uint64_t>(dyn[i].first));
        ram.put(at + 0x2000 + 16 * i + 8, dyn[i].second);
    }
    return ram;
}

pyrebox::Expected<ElfImage> parse(FakeRam& ram) {
    const ReadVirtualFn read = [&](uint64_t va, void* buf, size_t len) {
        return ram.read(va, buf, len);
    };
    return read_elf_dynamic_symbols(read, kBase, 0x6000);
}

std::vector<std::string> names(const ElfImage& image) {
    std::vector<std::string> out;
    for (const auto& s : image.symbols.symbols()) {
        out.push_back(s.name);
    }
    return out;
}

void expect_symbols(const ElfImage& image) {
    ASSERT_TRUE(image.is_elf);
    // Sorted by value; aliases by preference; no undefined, ABS or TLS symbol.
    EXPECT_EQ(names(image), (std::vector<std::string>{"getpid", "__getpid", "data_obj", "memcpy",
                                                      "memcpy", "marker"}));
    const uint64_t bias = image.bias(kBase);
    const ElfSymbol* getpid = image.symbols.find("getpid");
    ASSERT_NE(getpid, nullptr);
    EXPECT_EQ(bias + getpid->value, kBase + 0x3000);
    EXPECT_EQ(getpid->size, 8u);
    // The default version of memcpy, not the hidden one.
    ASSERT_NE(image.symbols.find("memcpy"), nullptr);
    EXPECT_EQ(bias + image.symbols.find("memcpy")->value, kBase + 0x3300);
    EXPECT_EQ(image.symbols.find("puts"), nullptr);
    EXPECT_EQ(image.symbols.find("GLIBC_2.2.5"), nullptr);
    EXPECT_EQ(image.symbols.find("tls_var"), nullptr);
}

TEST(ElfSymbols, SharedObjectWithLinkTimeDynamicPointers) {
    FakeRam ram = build({});
    auto image = parse(ram);
    ASSERT_TRUE(image.ok()) << image.error();
    EXPECT_TRUE(image->relocatable);
    EXPECT_EQ(image->bias(kBase), kBase);
    expect_symbols(*image);
}

TEST(ElfSymbols, SharedObjectWithPointersTheLoaderRewrote) {
    Options o;
    o.absolute = true;
    FakeRam ram = build(o);
    auto image = parse(ram);
    ASSERT_TRUE(image.ok()) << image.error();
    expect_symbols(*image);
}

TEST(ElfSymbols, SysvHashGivesTheCount) {
    Options o;
    o.gnu_hash = false;
    FakeRam ram = build(o);
    auto image = parse(ram);
    ASSERT_TRUE(image.ok()) << image.error();
    expect_symbols(*image);
}

TEST(ElfSymbols, ExecutableHasNoBias) {
    Options o;
    o.dyn = false;
    FakeRam ram = build(o);
    auto image = parse(ram);
    ASSERT_TRUE(image.ok()) << image.error();
    EXPECT_FALSE(image->relocatable);
    EXPECT_EQ(image->bias(kBase), 0u);
    expect_symbols(*image);
}

TEST(ElfSymbols, AMissingPageResolvesNothing) {
    Options o;
    o.strtab_present = false;
    FakeRam ram = build(o);
    auto image = parse(ram);
    ASSERT_FALSE(image.ok());
    EXPECT_NE(image.error().find("dynamic string table"), std::string::npos) << image.error();
}

TEST(ElfSymbols, NotAnElfImage) {
    Options o;
    o.elf = false;
    FakeRam ram = build(o);
    auto image = parse(ram);
    ASSERT_TRUE(image.ok()) << image.error();
    EXPECT_FALSE(image->is_elf);
    EXPECT_TRUE(image->symbols.symbols().empty());
}

TEST(ElfSymbols, ContainingSymbolBySize) {
    FakeRam ram = build({});
    auto image = parse(ram);
    ASSERT_TRUE(image.ok()) << image.error();
    const auto& set = image->symbols;
    ASSERT_NE(set.containing(0x3000), nullptr);
    EXPECT_EQ(set.containing(0x3000)->name, "getpid");
    EXPECT_EQ(set.containing(0x3007)->name, "getpid");
    EXPECT_EQ(set.containing(0x3008), nullptr);  // past getpid's 8 bytes
    EXPECT_EQ(set.containing(0x311f)->name, "data_obj");
    EXPECT_EQ(set.containing(0x3204)->name, "memcpy");
    EXPECT_EQ(set.containing(0x3400)->name, "marker");  // size 0: its own address
    EXPECT_EQ(set.containing(0x3401), nullptr);
    EXPECT_EQ(set.containing(0x10), nullptr);
    EXPECT_EQ(set.preceding(0x3401)->name, "marker");
    EXPECT_EQ(set.preceding(0x3050)->name, "getpid");
    EXPECT_EQ(set.preceding(0x2fff), nullptr);
}

TEST(ElfSymbols, PreferredNames) {
    ElfSymbol a{"getpid", 0, 0, 2, 2, false}, b{"__getpid", 0, 0, 2, 1, false};
    EXPECT_TRUE(SymbolSet::preferred(a, b));
    EXPECT_FALSE(SymbolSet::preferred(b, a));
    ElfSymbol hidden{"f", 0, 0, 2, 1, true}, plain{"__f", 0, 0, 2, 1, false};
    EXPECT_TRUE(SymbolSet::preferred(plain, hidden));
}

}  // namespace

namespace {

// e_phentsize = e_phnum = 0xffff (4 GiB of program headers): refused from
// the header, before anything is allocated or read.
TEST(ElfSymbols, ForgedProgramHeaderCountsAreRefusedBeforeReading) {
    FakeRam ram = build(Options{});
    ram.put(kBase + 54, 0xffff, 2);
    ram.put(kBase + 56, 0xffff, 2);
    size_t largest = 0;
    const ReadVirtualFn read = [&](uint64_t va, void* buf, size_t len) {
        largest = std::max(largest, len);
        return ram.read(va, buf, len);
    };
    auto image = read_elf_dynamic_symbols(read, kBase, 0x6000);
    ASSERT_FALSE(image.ok());
    EXPECT_NE(image.error().find("no usable program headers (65535 of 65535 bytes"),
              std::string::npos)
        << image.error();
    EXPECT_EQ(largest, 64u);  // the ELF header alone
    // A count that fits the entry size but not the mapping: refused too.
    ram.put(kBase + 54, 56, 2);
    ram.put(kBase + 56, 1000, 2);
    EXPECT_FALSE(read_elf_dynamic_symbols(read, kBase, 0x6000).ok());
}

}  // namespace
