#include <gtest/gtest.h>

#include "fake_ram.h"
#include "vmi/linux/linux_kernel.h"
#include "vmi/linux/module_symbols.h"
#include "vmi/linux/user_symbols.h"

#include <string>

namespace {

using pyrebox::testing::FakeRam;
using pyrebox::vmi::PagingMode;
using pyrebox::vmi::SymbolTable;
using pyrebox::vmi::linux_guest::KernelLocation;
using pyrebox::vmi::linux_guest::LinuxKernel;
using pyrebox::vmi::linux_guest::Module;
using pyrebox::vmi::linux_guest::ModuleSymbols;
using pyrebox::vmi::linux_guest::UserSymbolCache;

// struct module: kallsyms@544 (a pointer to struct mod_kallsyms);
// struct mod_kallsyms: symtab@0, num_symtab@8, strtab@16.
const char* kIsf = R"({"metadata": {"format": "6.2.0"},
  "base_types": {"pointer": {"size": 8, "signed": false, "kind": "int", "endian": "little"},
                 "unsigned int": {"size": 4, "signed": false, "kind": "int", "endian": "little"},
                 "char": {"size": 1, "signed": true, "kind": "char", "endian": "little"}},
  "enums": {},
  "symbols": {"_text": {"address": 18446744071578845184},
              "do_group_exit": {"address": 18446744071579000832},
              "fixed_percpu_data": {"address": 0},
              "cpu_number": {"address": 4660}},
  "user_types": {
    "module": {"kind": "struct", "size": 1024, "fields": {
      "kallsyms": {"offset": 544, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "mod_kallsyms"}}}}},
    "mod_kallsyms": {"kind": "struct", "size": 32, "fields": {
      "symtab": {"offset": 0, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "elf64_sym"}}},
      "num_symtab": {"offset": 8, "type": {"kind": "base", "name": "unsigned int"}},
      "strtab": {"offset": 16, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "char"}}}}}
  }})";

constexpr uint64_t kText = 0xffffffff81000000ull;  // 18446744071578845184
constexpr uint64_t kSlide = 0x2a00000;

LinuxKernel kernel() {
    auto table = SymbolTable::parse(kIsf, "test.isf");
    EXPECT_TRUE(table.ok()) << table.error();
    LinuxKernel k(*table);
    KernelLocation loc;
    loc.virt_slide = kSlide;
    k.set_location(loc, PagingMode::None);
    return k;
}

TEST(KernelSymbols, VmlinuxSymbolsAreSlidExceptPerCpuOffsets) {
    auto k = kernel();
    auto set = k.vmlinux_symbols();
    ASSERT_TRUE(set.ok()) << set.error();
    const auto& s = **set;
    ASSERT_NE(s.find("_text"), nullptr);
    EXPECT_EQ(s.find("_text")->value, kText + kSlide);
    EXPECT_EQ(s.find("do_group_exit")->value, 0xffffffff81026000ull + kSlide);
    EXPECT_EQ(s.find("cpu_number")->value, 4660u);
    EXPECT_EQ(s.find("fixed_percpu_data")->value, 0u);
    // Nearest preceding symbol.
    EXPECT_EQ(s.preceding(0xffffffff81026000ull + kSlide + 0x10)->name, "do_group_exit");
    EXPECT_EQ(s.preceding(kText + kSlide + 1)->name, "_text");
}

// A module at 0x10000 whose kallsyms (at 0x11000) lists 5 entries: the null
// symbol, crc7_be (a function), an undefined symbol, crc7_be_syndrome_table
// (an object) and an unnamed one.
FakeRam module_memory(uint32_t count = 5) {
    FakeRam ram;
    ram.put(0x10000 + 544, 0x11000);
    ram.put(0x11000, 0x12000);       // symtab
    ram.put(0x11008, count, 4);      // num_symtab
    ram.put(0x11010, 0x13000);       // strtab
    const std::string strtab("\0crc7_be\0printk\0crc7_be_syndrome_table\0", 39);
    for (size_t i = 0; i < strtab.size(); ++i) {
        ram.put(0x13000 + i, static_cast<uint8_t>(strtab[i]), 1);
    }
    struct E { uint32_t name; uint8_t info; uint16_t shndx; uint64_t value, size; };
    const E entries[] = {
        {0, 0, 0, 0, 0},
        {1, 0x12, 2, 0xffffffffc0a01000ull, 0x30},
        {9, 0x10, 0, 0, 0},
        {16, 0x11, 4, 0xffffffffc0a03000ull, 0x100},
        {0, 0x03, 2, 0xffffffffc0a01000ull, 0},
    };
    for (size_t i = 0; i < 5; ++i) {
        const uint64_t e = 0x12000 + 24 * i;
        ram.put(e, entries[i].name, 4);
        ram.put(e + 4, entries[i].info, 1);
        ram.put(e + 6, entries[i].shndx, 2);
        ram.put(e + 8, entries[i].value);
        ram.put(e + 16, entries[i].size);
    }
    return ram;
}

TEST(KernelSymbols, ModuleKallsyms) {
    auto k = kernel();
    FakeRam ram = module_memory();
    auto read = k.module_kallsyms(ram, 0x10000);
    ASSERT_TRUE(read.ok()) << read.error();
    const auto& set = *read;
    ASSERT_EQ(set->symbols().size(), 2u);
    ASSERT_NE(set->find("crc7_be"), nullptr);
    EXPECT_EQ(set->find("crc7_be")->value, 0xffffffffc0a01000ull);
    EXPECT_EQ(set->find("crc7_be_syndrome_table")->value, 0xffffffffc0a03000ull);
    EXPECT_EQ(set->find("printk"), nullptr);  // undefined in the module
    EXPECT_EQ(set->preceding(0xffffffffc0a01234ull)->name, "crc7_be");
}

TEST(KernelSymbols, UnreadableKallsymsIsAnError) {
    auto k = kernel();
    FakeRam ram = module_memory(400);  // entries up to a page that is not there
    auto set = k.module_kallsyms(ram, 0x10000);
    ASSERT_FALSE(set.ok());
    EXPECT_NE(set.error().find("of the struct module at 0x10000"), std::string::npos) << set.error();
    FakeRam empty;
    EXPECT_FALSE(k.module_kallsyms(empty, 0x10000).ok());
}

// A table read once is kept by its pointers and count: the same answer
// (the same object) without reading the symbols again; a failure too.
// Other pointers or another count are another table.
TEST(KernelSymbols, ModuleKallsymsAreReadOnce) {
    auto k = kernel();
    FakeRam ram = module_memory();
    auto first = k.module_kallsyms(ram, 0x10000);
    ASSERT_TRUE(first.ok()) << first.error();
    ram.put(0x12000 + 24 + 8, 0xffffffffc0b00000ull);  // crc7_be moves: not read again
    auto again = k.module_kallsyms(ram, 0x10000);
    ASSERT_TRUE(again.ok()) << again.error();
    EXPECT_EQ(again->get(), first->get());
    ram.put(0x11008, 4, 4);  // another count: another table
    auto other = k.module_kallsyms(ram, 0x10000);
    ASSERT_TRUE(other.ok()) << other.error();
    EXPECT_EQ((*other)->find("crc7_be")->value, 0xffffffffc0b00000ull);

    FakeRam broken = module_memory(400);
    auto failed = k.module_kallsyms(broken, 0x10000);
    ASSERT_FALSE(failed.ok());
    for (uint64_t page = 0x12000; page < 0x12000 + 24 * 400; page += 4096) {
        broken.put(page + 4088, 0);  // the pages appear: the answer stays
    }
    auto still = k.module_kallsyms(broken, 0x10000);
    ASSERT_FALSE(still.ok());
    EXPECT_EQ(still.error(), failed.error());
}

TEST(KernelSymbols, ModuleKallsymsAreBounded) {
    auto k = kernel();
    FakeRam ram = module_memory(1u << 20);
    auto many = k.module_kallsyms(ram, 0x10000);
    ASSERT_FALSE(many.ok());
    EXPECT_EQ(many.error(),
              "the struct module at 0x10000 claims 1048576 symbols (at most 131072 are read: no "
              "kernel module has that many)");
}

// The cache of user files: keyed by file identity, filled only by parses
// that succeed.
TEST(UserSymbols, ParsedOncePerFileIdentity) {
    const auto k = kernel();
    FakeRam ram;
    UserSymbolCache cache;
    Module m;
    m.name = "data.bin";
    m.base = 0x400000;
    m.size = 0x1000;
    m.inode = 7;
    m.dev = 0x800001;
    // Not present yet: not resolved, nothing cached.
    EXPECT_EQ(cache.get(k, ram, 0, m), nullptr);
    EXPECT_EQ(cache.size(), 0u);
    ram.put_string(0x400000, "not an ELF file");
    auto first = cache.get(k, ram, 0, m);
    ASSERT_NE(first, nullptr);
    EXPECT_FALSE(first->is_elf);
    EXPECT_EQ(cache.size(), 1u);
    // Another process mapping the same file elsewhere: the same parse.
    Module elsewhere = m;
    elsewhere.base = 0x800000;
    EXPECT_EQ(cache.get(k, ram, 0, elsewhere), first);
    // Another file (another size) is parsed on its own.
    Module other = m;
    other.file_size = 99;
    EXPECT_NE(cache.get(k, ram, 0, other), first);
    EXPECT_EQ(cache.size(), 2u);
    // No identity: parsed, never cached.
    Module unknown = m;
    unknown.inode = 0;
    EXPECT_NE(cache.get(k, ram, 0, unknown), nullptr);
    EXPECT_EQ(cache.size(), 2u);
    // A base that maps another part of the file than its start: no symbols.
    Module offset = m;
    offset.base_pgoff = 3;
    EXPECT_EQ(cache.get(k, ram, 0, offset), nullptr);
}

// The rule of va_to_sym: containing symbol for ELF files (bias applied),
// nearest preceding inside the module for the kernel.
TEST(ModuleSymbolsAt, ElfContainsKernelPrecedes) {
    using pyrebox::vmi::ElfSymbol;
    using pyrebox::vmi::SymbolSet;
    auto set = std::make_shared<const SymbolSet>(std::vector<ElfSymbol>{
        {"f", 0x1000, 0x10, 2, 1, false}, {"g", 0x2000, 0, 2, 1, false}});
    Module m;
    m.base = 0x7f0000000000;
    m.size = 0x3000;
    ModuleSymbols elf{m, set, m.base, false};
    EXPECT_EQ(elf.at(m.base + 0x1004)->name, "f");
    EXPECT_EQ(elf.at(m.base + 0x1010), nullptr);  // past f
    EXPECT_EQ(elf.at(m.base + 0x2000)->name, "g");
    EXPECT_EQ(elf.at(m.base + 0x2001), nullptr);
    EXPECT_EQ(elf.at(m.base + 0x3000), nullptr);  // outside the module

    auto kset = std::make_shared<const SymbolSet>(std::vector<ElfSymbol>{
        {"before", 0xffffffffc0000000ull, 0, 2, 1, false},
        {"crc7_be", 0xffffffffc0a01000ull, 0, 2, 1, false}});
    Module ko;
    ko.name = "crc7";
    ko.base = 0xffffffffc0a01000ull;
    ko.size = 0x2000;
    ModuleSymbols kernel{ko, kset, 0, true};
    EXPECT_EQ(kernel.at(ko.base + 0x1fff)->name, "crc7_be");
    EXPECT_EQ(kernel.at(ko.base - 1), nullptr);  // outside
    ko.base += 0x100;  // a preceding symbol outside the module is not its
    ModuleSymbols shifted{ko, kset, 0, true};
    EXPECT_EQ(shifted.at(ko.base), nullptr);
    ModuleSymbols unresolved{ko, nullptr, 0, true};
    EXPECT_EQ(unresolved.at(ko.base), nullptr);
}

}  // namespace
