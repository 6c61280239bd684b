// The kernel layouts of Linux 5.4 through 7.3 that differ from the fixture's
// (6.1-like) one: VMAs on the mm->mmap list (up to 6.0), kernel modules in
// core_layout/init_layout (up to 6.3) and in mem[] (6.4+), the KPTI flag in
// boot_cpu_data. Synthetic structures in FakeRam, no paging.
#include <gtest/gtest.h>

#include <string>

#include "fake_ram.h"
#include "linux_fixture.h"
#include "vmi/linux/linux_kernel.h"

namespace {

using pyrebox::testing::FakeRam;
using namespace pyrebox::testing::linux_fixture;

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

// The fixture's types with extra user types, symbols and enums.
std::string extended(std::string text, const std::string& types, const std::string& symbols = "",
                     const std::string& enums = "") {
    text = replaced(text, R"("user_types": {)", R"("user_types": {)" + types);
    if (!symbols.empty()) {
        text = replaced(text, R"("symbols": {)", R"("symbols": {)" + symbols);
    }
    if (!enums.empty()) {
        text = replaced(text, R"("enums": {})", R"("enums": {)" + enums + "}");
    }
    return replaced(text, R"("char": {"size": 1)",
                    R"("unsigned int": {"size": 4, "signed": false, "kind": "int", "endian": "little"},
                       "char": {"size": 1)");
}

// --- VMAs on the mm->mmap list (Linux up to 6.0) ---

// mm_struct.mmap@0 replaces mm_mt; vm_area_struct.vm_next@24.
std::string list_isf() {
    std::string text = replaced(isf(), R"("mm_mt": {"offset": 0, "type": {"kind": "struct", "name": "maple_tree"}})",
                                R"("mmap": {"offset": 0, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "vm_area_struct"}}})");
    return replaced(text, R"("vm_mm": {"offset": 16,)",
                    R"("vm_next": {"offset": 24, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "vm_area_struct"}}},
          "vm_mm": {"offset": 16,)");
}

constexpr uint64_t kMm = 0x5000;

struct VmaListTest : ::testing::Test {
    FakeRam ram;
    LinuxKernel k = kernel(list_isf());

    // A VMA at `addr` mapping [start, end) of `file` (0: anonymous), then `next`.
    void put_vma(uint64_t addr, uint64_t start, uint64_t end, uint64_t file, uint64_t next) {
        ram.put(addr + 0, start);
        ram.put(addr + 8, end);
        ram.put(addr + 16, kMm);
        ram.put(addr + 24, next);
        ram.put(addr + 112, file);
    }
    // struct file at `file` for /<name> (a dentry under a root dentry).
    void put_file(uint64_t file, uint64_t dentry, const std::string& name) {
        const uint64_t root = 0xa000;
        ram.put(root + 24, root);
        ram.put(file + 16 + 8, dentry);
        ram.put(dentry + 24, root);
        ram.put(dentry + 32 + 8, dentry + 0x80);
        ram.put_string(dentry + 0x80, name);
    }
};

TEST_F(VmaListTest, WalksTheListInOrderAndMergesAFilesMappings) {
    put_file(0x8000, 0x8100, "libc.so.6");
    put_file(0x8200, 0x8300, "prog");
    put_vma(0x6000, 0x400000, 0x401000, 0x8200, 0x6100);
    put_vma(0x6100, 0x401000, 0x402000, 0x8200, 0x6200);
    put_vma(0x6200, 0x10000000, 0x10021000, 0, 0x6300);  // heap: anonymous
    put_vma(0x6300, 0x7f0000000000, 0x7f0000028000, 0x8000, 0x6400);
    put_vma(0x6400, 0x7f0000028000, 0x7f00001bd000, 0x8000, 0);
    ram.put(kMm + 0, 0x6000);
    auto vmas = k.mm_vmas(ram, kMm);
    ASSERT_TRUE(vmas.ok()) << vmas.error();
    EXPECT_EQ(*vmas, (std::vector<uint64_t>{0x6000, 0x6100, 0x6200, 0x6300, 0x6400}));
    auto mods = k.mm_modules(ram, kMm);
    ASSERT_TRUE(mods.ok()) << mods.error();
    ASSERT_EQ(mods->size(), 2u);
    EXPECT_EQ((*mods)[0].fullname, "/prog");
    EXPECT_EQ((*mods)[0].base, 0x400000u);
    EXPECT_EQ((*mods)[0].size, 0x2000u);
    EXPECT_EQ((*mods)[1].fullname, "/libc.so.6");
    EXPECT_EQ((*mods)[1].base, 0x7f0000000000u);
    EXPECT_EQ((*mods)[1].size, 0x1bd000u);
}

// One file whose path does not read is one partial entry; the others list.
TEST_F(VmaListTest, AFileWhosePathDoesNotReadIsAPartialEntry) {
    put_file(0x8000, 0x8100, "libc.so.6");
    ram.put(0x8200 + 16 + 8, 0xdead0000);  // f_path.dentry: unmapped
    put_vma(0x6000, 0x400000, 0x402000, 0x8200, 0x6100);
    put_vma(0x6100, 0x7f0000000000, 0x7f0000028000, 0x8000, 0);
    ram.put(kMm + 0, 0x6000);
    auto mods = k.mm_modules(ram, kMm);
    ASSERT_TRUE(mods.ok()) << mods.error();
    ASSERT_EQ(mods->size(), 2u);
    EXPECT_EQ((*mods)[0].fullname, "[unreadable 0x8200]");
    EXPECT_EQ((*mods)[0].name, "[unreadable 0x8200]");
    EXPECT_EQ((*mods)[0].base, 0x400000u);
    EXPECT_EQ((*mods)[0].size, 0x2000u);
    EXPECT_EQ((*mods)[0].partial.rfind("the file mapped at 0x400000: ", 0), 0u) << (*mods)[0].partial;
    EXPECT_EQ((*mods)[1].fullname, "/libc.so.6");
    EXPECT_TRUE((*mods)[1].partial.empty());
}

TEST_F(VmaListTest, AnEmptyListHasNoVmas) {
    ram.put(kMm + 0, 0);
    auto vmas = k.mm_vmas(ram, kMm);
    ASSERT_TRUE(vmas.ok()) << vmas.error();
    EXPECT_TRUE(vmas->empty());
}

TEST_F(VmaListTest, ACycleIsAnErrorNamingTheVma) {
    put_vma(0x6000, 0x400000, 0x401000, 0, 0x6100);
    put_vma(0x6100, 0x401000, 0x402000, 0, 0x6000);  // back to the first
    ram.put(kMm + 0, 0x6000);
    auto vmas = k.mm_vmas(ram, kMm);
    ASSERT_FALSE(vmas.ok());
    EXPECT_NE(vmas.error().find("the VMA list of the mm_struct at 0x5000 (mm->mmap) is broken: "
                                "vm_area_struct 0x6000 comes back after 2 entries"),
              std::string::npos)
        << vmas.error();
}

TEST_F(VmaListTest, ASelfLoopIsACycle) {
    put_vma(0x6000, 0x400000, 0x401000, 0, 0x6000);
    ram.put(kMm + 0, 0x6000);
    auto vmas = k.mm_vmas(ram, kMm);
    ASSERT_FALSE(vmas.ok());
    EXPECT_NE(vmas.error().find("vm_area_struct 0x6000 comes back after 1 entries"),
              std::string::npos)
        << vmas.error();
}

TEST_F(VmaListTest, OutOfOrderOrEmptyVmasAreErrors) {
    put_vma(0x6000, 0x500000, 0x501000, 0, 0x6100);
    put_vma(0x6100, 0x400000, 0x401000, 0, 0);  // below the previous one
    ram.put(kMm + 0, 0x6000);
    auto vmas = k.mm_vmas(ram, kMm);
    ASSERT_FALSE(vmas.ok());
    EXPECT_NE(vmas.error().find("vm_area_struct 0x6100 spans 0x400000..0x401000, not above the "
                                "previous one's end 0x501000"),
              std::string::npos)
        << vmas.error();
    put_vma(0x6100, 0x600000, 0x600000, 0, 0);  // vm_end == vm_start
    EXPECT_FALSE(k.mm_vmas(ram, kMm).ok());
}

TEST_F(VmaListTest, AnUnreadableVmaIsNamed) {
    put_vma(0x6000, 0x400000, 0x401000, 0, 0x90000);  // into memory that is not there
    ram.put(kMm + 0, 0x6000);
    auto vmas = k.mm_vmas(ram, kMm);
    ASSERT_FALSE(vmas.ok());
    EXPECT_NE(vmas.error().find("vm_area_struct at 0x90000: cannot read vm_area_struct.vm_start"),
              std::string::npos)
        << vmas.error();
}

TEST_F(VmaListTest, TheWalkIsBounded) {
    // kMaxListEntries + 1 one-page VMAs, in order, each pointing to the next.
    const uint64_t n = LinuxKernel::kMaxListEntries + 1;
    for (uint64_t i = 0; i < n; ++i) {
        const uint64_t addr = 0x1000000 + i * 0x40;
        ram.put(addr + 0, 0x400000 + i * 0x1000);
        ram.put(addr + 8, 0x401000 + i * 0x1000);
        ram.put(addr + 24, i + 1 < n ? addr + 0x40 : 0);
    }
    ram.put(kMm + 0, 0x1000000);
    auto vmas = k.mm_vmas(ram, kMm);
    ASSERT_FALSE(vmas.ok());
    EXPECT_NE(vmas.error().find("has more than 65536 entries: giving up"), std::string::npos)
        << vmas.error();
}

TEST(VmaLayout, AnMmWithNeitherMapleTreeNorListIsNamed) {
    const std::string text = replaced(isf(), R"("mm_mt": {"offset": 0, "type": {"kind": "struct", "name": "maple_tree"}},)", "");
    auto vmas = kernel(text).mm_vmas(*std::make_unique<FakeRam>(), kMm);
    ASSERT_FALSE(vmas.ok());
    EXPECT_NE(vmas.error().find("no member 'mm_mt' in struct mm_struct"), std::string::npos)
        << vmas.error();
}

// --- Kernel modules ---

constexpr uint64_t kModulesHead = 0x20000;  // the `modules` list head
constexpr uint64_t kModule = 0x21000;       // one struct module

// struct module: list@8, name@24 (char[56]), then the memory layout.
std::string module_isf(const std::string& layout_fields, const std::string& extra_types,
                       const std::string& enums = "") {
    return extended(isf(), R"(
        "module": {"kind": "struct", "size": 1024, "fields": {
          "list": {"offset": 8, "type": {"kind": "struct", "name": "list_head"}},
          "name": {"offset": 24, "type": {"kind": "array", "count": 56, "subtype": {"kind": "base", "name": "char"}}},)" +
                        layout_fields + "}},\n" + extra_types,
                    R"("modules": {"address": 131072},)", enums);
}

void put_module_list(FakeRam& ram, const std::string& name) {
    ram.put(kModulesHead, kModule + 8);
    ram.put(kModulesHead + 8, kModule + 8);
    ram.put(kModule + 8, kModulesHead);
    ram.put(kModule + 16, kModulesHead);
    ram.put_string(kModule + 24, name);
}

LinuxKernel located_at_slide_0(const std::string& text) {
    // The fixture's symbol for `modules` is 131072 (0x20000) with no slide.
    return kernel(text);
}

TEST(KernelModules, CoreAndInitLayoutsUpTo63) {
    const std::string text = module_isf(R"(
          "core_layout": {"offset": 384, "type": {"kind": "struct", "name": "module_layout"}},
          "init_layout": {"offset": 464, "type": {"kind": "struct", "name": "module_layout"}})",
                                        R"("module_layout": {"kind": "struct", "size": 80, "fields": {
          "base": {"offset": 0, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "char"}}},
          "size": {"offset": 8, "type": {"kind": "base", "name": "unsigned int"}}}},)");
    FakeRam ram;
    put_module_list(ram, "isofs");
    ram.put(kModule + 384, 0xffffffffc0100000);
    ram.put(kModule + 392, 0x9000, 4);
    ram.put(kModule + 464, 0);  // init freed: base NULL, size 0
    ram.put(kModule + 472, 0, 4);
    auto k = located_at_slide_0(text);
    auto mods = k.kernel_modules(ram);
    ASSERT_TRUE(mods.ok()) << mods.error();
    ASSERT_EQ(mods->size(), 2u);
    const auto& m = (*mods)[1];
    EXPECT_EQ(m.name, "isofs");
    EXPECT_EQ(m.kaddr, kModule);
    EXPECT_EQ(m.base, 0xffffffffc0100000u);
    EXPECT_EQ(m.size, 0x9000u);
    ASSERT_EQ(m.regions.size(), 1u);
    EXPECT_EQ(m.regions[0].name, "core");
    // While its init runs (do_init_module) the init region is listed, not
    // counted: the size is the one the live module will have.
    ram.put(kModule + 464, 0xffffffffc0200000);
    ram.put(kModule + 472, 0x2000, 4);
    auto loading = k.kernel_module(ram, kModule);
    ASSERT_TRUE(loading.ok()) << loading.error();
    EXPECT_EQ(loading->base, 0xffffffffc0100000u);
    EXPECT_EQ(loading->size, 0x9000u);
    ASSERT_EQ(loading->regions.size(), 2u);
    EXPECT_EQ(loading->regions[1].name, "init");
    EXPECT_EQ(loading->regions[1].base, 0xffffffffc0200000u);
    EXPECT_EQ(loading->regions[1].size, 0x2000u);
}

// 6.4+: mem[7] of struct module_memory (base@0, size@8; 72 bytes each) at 320.
std::string mem_isf(const std::string& enums) {
    return module_isf(R"(
          "mem": {"offset": 320, "type": {"kind": "array", "count": 7, "subtype": {"kind": "struct", "name": "module_memory"}}})",
                      R"("module_memory": {"kind": "struct", "size": 72, "fields": {
          "base": {"offset": 0, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}},
          "size": {"offset": 8, "type": {"kind": "base", "name": "unsigned int"}}}},)",
                      enums);
}

const char* kModMemTypes = R"("mod_mem_type": {"size": 4, "base": "int", "constants": {
    "MOD_TEXT": 0, "MOD_DATA": 1, "MOD_RODATA": 2, "MOD_RO_AFTER_INIT": 3, "MOD_INIT_TEXT": 4,
    "MOD_INIT_DATA": 5, "MOD_INIT_RODATA": 6, "MOD_MEM_NUM_TYPES": 7, "MOD_INVALID": -1}})";

void put_region(FakeRam& ram, int type, uint64_t base, uint32_t size) {
    ram.put(kModule + 320 + 72 * type, base);
    ram.put(kModule + 320 + 72 * type + 8, size, 4);
}

TEST(KernelModules, MemRegionsFrom64AddUpAsProcModulesDoes) {
    FakeRam ram;
    put_module_list(ram, "isofs");
    put_region(ram, 0, 0xffffffffc0400000, 0x5000);  // text
    put_region(ram, 1, 0xffffffffc0800000, 0x3000);  // data, elsewhere
    put_region(ram, 2, 0xffffffffc0406000, 0x1000);  // rodata
    put_region(ram, 3, 0xffffffffc0407000, 0x1000);  // ro_after_init
    auto mods = kernel(mem_isf(kModMemTypes)).kernel_modules(ram);
    ASSERT_TRUE(mods.ok()) << mods.error();
    ASSERT_EQ(mods->size(), 2u);
    const auto& m = (*mods)[1];
    EXPECT_EQ(m.base, 0xffffffffc0400000u);
    EXPECT_EQ(m.size, 0xa000u);
    ASSERT_EQ(m.regions.size(), 4u);
    EXPECT_EQ(m.regions[0].name, "text");
    EXPECT_EQ(m.regions[1].name, "data");
    EXPECT_EQ(m.regions[1].base, 0xffffffffc0800000u);
    EXPECT_EQ(m.regions[1].size, 0x3000u);
    EXPECT_EQ(m.regions[2].name, "rodata");
    EXPECT_EQ(m.regions[3].name, "ro_after_init");
    // During init: init_text and init_rodata are listed, not counted.
    put_region(ram, 4, 0xffffffffc0900000, 0x2000);
    put_region(ram, 6, 0xffffffffc0a00000, 0x1000);
    auto loading = kernel(mem_isf(kModMemTypes)).kernel_module(ram, kModule);
    ASSERT_TRUE(loading.ok()) << loading.error();
    EXPECT_EQ(loading->size, 0xa000u);
    ASSERT_EQ(loading->regions.size(), 6u);
    EXPECT_EQ(loading->regions[4].name, "init_text");
    EXPECT_EQ(loading->regions[5].name, "init_rodata");
    EXPECT_EQ(loading->regions[5].size, 0x1000u);
}

TEST(KernelModules, RegionNamesAndTheTextComeFromTheEnum) {
    // A kernel that numbers the types otherwise: MOD_TEXT is 1 here.
    const std::string enums = R"("mod_mem_type": {"size": 4, "base": "int", "constants": {
        "MOD_DATA": 0, "MOD_TEXT": 1}})";
    FakeRam ram;
    put_module_list(ram, "m");
    put_region(ram, 0, 0xffffffffc0800000, 0x3000);
    put_region(ram, 1, 0xffffffffc0400000, 0x5000);
    put_region(ram, 6, 0xffffffffc0900000, 0x1000);
    auto m = kernel(mem_isf(enums)).kernel_module(ram, kModule);
    ASSERT_TRUE(m.ok()) << m.error();
    EXPECT_EQ(m->base, 0xffffffffc0400000u);
    EXPECT_EQ(m->size, 0x9000u);  // mem[6] has no init name here: it counts
    ASSERT_EQ(m->regions.size(), 3u);
    EXPECT_EQ(m->regions[0].name, "data");
    EXPECT_EQ(m->regions[1].name, "text");
    EXPECT_EQ(m->regions[2].name, "mem[6]");
}

TEST(KernelModules, NeitherLayoutIsNamed) {
    FakeRam ram;
    put_module_list(ram, "m");
    auto mods = kernel(module_isf(R"("x": {"offset": 0, "type": {"kind": "base", "name": "int"}})", ""))
                    .kernel_modules(ram);
    ASSERT_FALSE(mods.ok());
    EXPECT_NE(mods.error().find("neither module.core_layout nor module.mem"), std::string::npos)
        << mods.error();
}

// --- KPTI: boot_cpu_data.x86_capability ---

constexpr uint64_t kBootCpuData = 0x30000;
constexpr uint64_t kCapFlags = 0x31000;  // x86_cap_flags: char *[4 * 32]
constexpr uint64_t kNames = 0x33000;

// cpuinfo_x86.x86_capability@48: u32[4].
std::string kpti_isf(bool with_flags, int words = 4) {
    return extended(isf(), R"(
        "cpuinfo_x86": {"kind": "struct", "size": 128, "fields": {
          "x86_capability": {"offset": 48, "type": {"kind": "array", "count": )" +
                        std::to_string(words) +
                        R"(, "subtype": {"kind": "base", "name": "unsigned int"}}}}},)",
                    std::string(R"("boot_cpu_data": {"address": 196608},)") +
                        (with_flags ? R"("x86_cap_flags": {"address": 200704},)" : ""));
}

// Names for features 0 ("fpu") and `pti_bit` ("pti"); the others NULL.
void put_flag_names(FakeRam& ram, uint64_t pti_bit) {
    ram.put(kCapFlags, kNames);
    ram.put_string(kNames, "fpu");
    ram.put(kCapFlags + 8 * pti_bit, kNames + 16);
    ram.put_string(kNames + 16, "pti");
    for (uint64_t i = 1; i < 4 * 32; ++i) {
        if (i != pti_bit) {
            ram.put(kCapFlags + 8 * i, 0);
        }
    }
}

void set_bit(FakeRam& ram, uint64_t bit) {
    ram.put(kBootCpuData + 48 + 4 * (bit / 32), uint32_t{1} << (bit % 32), 4);
}

TEST(Kpti, TheBitNamedPtiInTheKernelsOwnTable) {
    FakeRam ram;
    put_flag_names(ram, 3 * 32 + 5);
    for (int w = 0; w < 4; ++w) {
        ram.put(kBootCpuData + 48 + 4 * w, 0, 4);
    }
    auto k = kernel(kpti_isf(true));
    auto off = k.kpti(ram);
    ASSERT_TRUE(off.ok()) << off.error();
    EXPECT_FALSE(*off);
    set_bit(ram, 2 * 32 + 11);  // another feature: not KPTI
    EXPECT_FALSE(*k.kpti(ram));
    set_bit(ram, 3 * 32 + 5);
    EXPECT_TRUE(*k.kpti(ram));
}

TEST(Kpti, WithoutTheNameTableTheFeatureNumberSince415) {
    FakeRam ram;
    for (int w = 0; w < 8; ++w) {
        ram.put(kBootCpuData + 48 + 4 * w, 0, 4);
    }
    auto k = kernel(kpti_isf(false, 8));
    EXPECT_FALSE(*k.kpti(ram));
    set_bit(ram, 7 * 32 + 11);
    EXPECT_TRUE(*k.kpti(ram));
    // A capability array too short for that bit is an error, not a guess.
    auto short_array = kernel(kpti_isf(false, 4)).kpti(ram);
    ASSERT_FALSE(short_array.ok());
    EXPECT_NE(short_array.error().find("bit 235 is beyond boot_cpu_data.x86_capability (128 bits)"),
              std::string::npos)
        << short_array.error();
}

TEST(Kpti, MissingPiecesAreNamed) {
    FakeRam ram;
    auto no_type = kernel().kpti(ram);
    ASSERT_FALSE(no_type.ok());
    EXPECT_NE(no_type.error().find("lacks boot_cpu_data or cpuinfo_x86.x86_capability"),
              std::string::npos)
        << no_type.error();
    put_flag_names(ram, 40);
    ram.put(kCapFlags + 8 * 40, 0);  // no "pti" among the names
    auto unnamed = kernel(kpti_isf(true)).kpti(ram);
    ASSERT_FALSE(unnamed.ok());
    EXPECT_NE(unnamed.error().find("x86_cap_flags names no \"pti\" feature"), std::string::npos)
        << unnamed.error();
    FakeRam empty;
    auto unreadable = kernel(kpti_isf(true)).kpti(empty);
    ASSERT_FALSE(unreadable.ok());
    EXPECT_NE(unreadable.error().find("cannot read x86_cap_flags"), std::string::npos)
        << unreadable.error();
}

}  // namespace
