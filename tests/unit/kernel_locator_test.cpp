#include "vmi/linux/kernel_locator.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <string>

namespace {

using pyrebox::vmi::PagingMode;
using pyrebox::vmi::PhysicalMemory;
using pyrebox::vmi::SymbolTable;
using pyrebox::vmi::linux_guest::KernelLocation;
using pyrebox::vmi::linux_guest::locate_kernel;
using pyrebox::vmi::linux_guest::read_page_offset_base;
using pyrebox::vmi::linux_guest::verify_location;

constexpr uint64_t P = 1ull << 0;
constexpr uint64_t RW = 1ull << 1;
constexpr uint64_t PS = 1ull << 7;
constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

// Guest RAM: zeros below `zero_limit`, plus any page a test writes;
// everything else is not RAM.
class FakeRam : public PhysicalMemory {
public:
    explicit FakeRam(uint64_t zero_limit) : zero_limit_(zero_limit) {}

    bool read(uint64_t paddr, void* buf, size_t len) override {
        auto* out = static_cast<uint8_t*>(buf);
        for (size_t i = 0; i < len; ++i) {
            const uint64_t a = paddr + i;
            auto it = pages_.find(a & ~0xFFFull);
            if (it != pages_.end()) {
                out[i] = it->second[a & 0xFFF];
            } else if (a < zero_limit_) {
                out[i] = 0;
            } else {
                return false;
            }
        }
        return true;
    }

    bool write(uint64_t, const void*, size_t) override { return false; }

    void put(uint64_t paddr, uint64_t value) {
        for (size_t i = 0; i < 8; ++i) {
            byte(paddr + i) = static_cast<uint8_t>(value >> (8 * i));
        }
    }

    void put_string(uint64_t paddr, const std::string& s) {
        for (size_t i = 0; i < s.size(); ++i) {
            byte(paddr + i) = static_cast<uint8_t>(s[i]);
        }
    }

    uint64_t get(uint64_t paddr) {
        uint64_t v = 0;
        EXPECT_TRUE(read(paddr, &v, 8));
        return v;
    }

private:
    uint8_t& byte(uint64_t paddr) {
        auto [it, inserted] = pages_.try_emplace(paddr & ~0xFFFull);
        if (inserted) {
            it->second.fill(0);
        }
        return it->second[paddr & 0xFFF];
    }

    uint64_t zero_limit_;
    std::map<uint64_t, std::array<uint8_t, 4096>> pages_;
};

constexpr uint64_t kStart = 0xffffffff80000000ull;
constexpr uint64_t kText = 0xffffffff81000000ull;
constexpr uint64_t kBannerVa = 0xffffffff82233620ull;
constexpr uint64_t kPgdVa = 0xffffffff8280a000ull;
constexpr uint64_t kPageOffsetBaseVa = 0xffffffff8260d848ull;
constexpr uint64_t kImageSize = 32 * MiB;  // _text .. _end, rounded up to 2 MiB
const std::string kBanner = "Linux version 6.1.0-test (gcc) #1 SMP PREEMPT_DYNAMIC\n";

std::string isf(bool with_banner_data, const std::string& extra_symbols = "",
                const std::string& pointer_size = "8") {
    // base64("Linux version 6.1.0-test (gcc) #1 SMP PREEMPT_DYNAMIC\n\0")
    const std::string data =
        with_banner_data
            ? R"(, "constant_data": "TGludXggdmVyc2lvbiA2LjEuMC10ZXN0IChnY2MpICMxIFNNUCBQUkVFTVBUX0RZTkFNSUMKAA==")"
            : "";
    return R"({"metadata": {"format": "6.2.0"},
      "base_types": {"pointer": {"size": )" +
           pointer_size + R"(, "signed": false, "kind": "int", "endian": "little"}},
      "user_types": {}, "enums": {},
      "symbols": {
        "_text": {"address": 18446744071578845184},
        "linux_banner": {"address": 18446744071597930016)" +
           data + R"(},
        "init_top_pgt": {"address": 18446744071604051968},
        "page_offset_base": {"address": 18446744071601969224})" +
           extra_symbols + "}}";
}

SymbolTable table(const std::string& text) {
    auto t = SymbolTable::parse(text, "test.isf");
    EXPECT_TRUE(t.ok()) << t.error();
    return *t;
}

// A kernel loaded at physical `_text` + `phys_slide`, mapped at
// `_text` + `virt_slide` by its own page tables (init_top_pgt in the image,
// the lower levels in a pool above it), with 2 MiB pages, or 4 KiB pages
// for the pages the locator looks at.
class Kernel {
public:
    Kernel(FakeRam& ram, uint64_t phys_slide, uint64_t virt_slide, bool small_pages = false)
        : ram_(ram), ps_(phys_slide), vs_(virt_slide) {
        pool_ = pa(kText) + kImageSize;  // page tables after the image
        ram_.put(pa(kPgdVa), 0);           // makes init_top_pgt's page RAM
        if (small_pages) {
            for (uint64_t va : {kText, kBannerVa & ~uint64_t{0xFFF}, kPageOffsetBaseVa & ~uint64_t{0xFFF}}) {
                map4k(va + vs_, pa(va));
            }
        } else {
            for (uint64_t off = 0; off < kImageSize; off += 2 * MiB) {
                map2m(kText + vs_ + off, pa(kText) + off);
            }
        }
        ram_.put_string(pa(kBannerVa), kBanner + std::string(1, '\0'));
    }

    uint64_t pa(uint64_t va) const { return va - kStart + ps_; }

private:
    uint64_t table(uint64_t table_pa, uint64_t va, unsigned shift) {
        const uint64_t slot = table_pa + ((va >> shift) & 511) * 8;
        uint64_t e = ram_.get(slot);
        if (!(e & P)) {
            e = alloc() | P | RW;
            ram_.put(slot, e);
        }
        return e & 0x000FFFFFFFFFF000ull;
    }

    uint64_t alloc() {
        const uint64_t t = pool_;
        pool_ += 0x1000;
        ram_.put(t, 0);  // makes the page RAM
        return t;
    }

    void map2m(uint64_t va, uint64_t target) {
        const uint64_t pdpt = table(pa(kPgdVa), va, 39);
        const uint64_t pd = table(pdpt, va, 30);
        ram_.put(pd + ((va >> 21) & 511) * 8, target | P | RW | PS);
    }

    void map4k(uint64_t va, uint64_t target) {
        const uint64_t pdpt = table(pa(kPgdVa), va, 39);
        const uint64_t pd = table(pdpt, va, 30);
        const uint64_t pt = table(pd, va, 21);
        ram_.put(pt + ((va >> 12) & 511) * 8, target | P | RW);
    }

    FakeRam& ram_;
    uint64_t ps_, vs_;
    uint64_t pool_;
};

void expect_location(const pyrebox::Expected<KernelLocation>& loc, uint64_t phys_slide,
                     uint64_t virt_slide, uint64_t page_offset_base) {
    ASSERT_TRUE(loc.ok()) << loc.error();
    EXPECT_EQ(loc->phys_slide, phys_slide);
    EXPECT_EQ(loc->virt_slide, virt_slide);
    EXPECT_EQ(loc->pgd_paddr, kPgdVa - kStart + phys_slide);
    EXPECT_EQ(loc->banner_paddr, kBannerVa - kStart + phys_slide);
    EXPECT_EQ(loc->page_offset_base, page_offset_base);
}

TEST(KernelLocator, NoKaslr) {
    FakeRam ram(512 * MiB);
    Kernel k(ram, 0, 0);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    auto loc = locate_kernel(table(isf(true)), ram, 512 * MiB);
    expect_location(loc, 0, 0, 0xffff888000000000ull);
    EXPECT_EQ(loc->pgd_paddr, 0x280a000u);
    EXPECT_EQ(loc->banner_paddr, 0x2233620u);
}

TEST(KernelLocator, KaslrPhysicalAndVirtualSlides) {
    FakeRam ram(512 * MiB);
    // Loaded at physical 0x1c600000, _text at virtual 0xffffffffab400000.
    Kernel k(ram, 0x1b600000, 0x2a400000);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff9a4a40000000ull);
    auto loc = locate_kernel(table(isf(true)), ram, 512 * MiB);
    expect_location(loc, 0x1b600000, 0x2a400000, 0xffff9a4a40000000ull);
    EXPECT_EQ(loc->pgd_paddr, 0x1de0a000u);
    EXPECT_EQ(loc->banner_paddr, 0x1d833620u);
}

TEST(KernelLocator, HighestVirtualSlide) {
    FakeRam ram(512 * MiB);
    // _text + 32 MiB image ending exactly at the top of the 1 GiB region.
    const uint64_t vs = GiB - 16 * MiB - kImageSize;
    Kernel k(ram, 0x4000000, vs);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    expect_location(locate_kernel(table(isf(true)), ram, 512 * MiB), 0x4000000, vs,
                    0xffff888000000000ull);
}

TEST(KernelLocator, WithoutTheBannerTextInTheIsf) {
    FakeRam ram(512 * MiB);
    Kernel k(ram, 0x7e00000, 0x11800000);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffffa0c280000000ull);
    // A "Linux version" string earlier in memory at the same offset modulo
    // 2 MiB, which the page tables do not confirm.
    ram.put_string(0x233620, "Linux version 6.1.0-test (gcc) #1 in the log buffer\n");
    expect_location(locate_kernel(table(isf(false)), ram, 512 * MiB), 0x7e00000, 0x11800000,
                    0xffffa0c280000000ull);
}

TEST(KernelLocator, ACopyOfTheBannerThePageTablesDoNotConfirmIsPassedOver) {
    FakeRam ram(512 * MiB);
    Kernel k(ram, 0x10000000, 0x3c000000);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    ram.put_string(0x2233620, kBanner + std::string(1, '\0'));  // where an unslid kernel would be
    ram.put_string(0x4433620, kBanner + std::string(1, '\0'));
    expect_location(locate_kernel(table(isf(true)), ram, 512 * MiB), 0x10000000, 0x3c000000,
                    0xffff888000000000ull);
}

TEST(KernelLocator, PageAlignedLoadAddressFoundByThe4KScan) {
    FakeRam ram(512 * MiB);
    // Not 2 MiB aligned (x86-64 kernels are, but the scan does not rely on
    // it); mapped with 4 KiB pages.
    Kernel k(ram, 0x3403000, 0x1000000, true);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    expect_location(locate_kernel(table(isf(true)), ram, 512 * MiB), 0x3403000, 0x1000000,
                    0xffff888000000000ull);
}

TEST(KernelLocator, KernelInRamAboveFourGigabytes) {
    // 6 GiB of RAM on a PC: 2 GiB below 4 GiB (zeros here), 4 GiB from
    // 4 GiB up, the kernel at 5 GiB.
    FakeRam ram(2 * GiB);
    Kernel k(ram, 5 * GiB - 16 * MiB, 0x20000000);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    expect_location(locate_kernel(table(isf(true)), ram, 6 * GiB), 5 * GiB - 16 * MiB,
                    0x20000000, 0xffff888000000000ull);
}

TEST(KernelLocator, FiveLevelPaging) {
    FakeRam ram(512 * MiB);
    // init_top_pgt is the PML5; its last entry leads to a 4-level tree.
    Kernel k(ram, 0, 0);
    // Entry 511 indexes the kernel half at both the PML5 and the PML4 level:
    // move the PML4 entry Kernel made into a PML4 of its own, and point
    // init_top_pgt's entry 511 at that.
    const uint64_t pml4_copy = 0x1f001000;
    ram.put(pml4_copy + 511 * 8, ram.get(k.pa(kPgdVa) + 511 * 8));
    ram.put(k.pa(kPgdVa) + 511 * 8, pml4_copy | P | RW);
    ram.put(k.pa(kPageOffsetBaseVa), 0xff11000000000000ull);
    auto loc = locate_kernel(table(isf(true)), ram, 512 * MiB, PagingMode::Long5);
    expect_location(loc, 0, 0, 0xff11000000000000ull);
    // Without the symbol: the 5-level default.
    auto t = table(R"({"metadata": {"format": "6.2.0"}, "user_types": {}, "symbols": {}})");
    auto d = read_page_offset_base(t, ram, 0, PagingMode::Long5);
    ASSERT_TRUE(d.ok()) << d.error();
    EXPECT_EQ(*d, 0xff11000000000000ull);
}

TEST(KernelLocator, PageOffsetBase) {
    FakeRam ram(512 * MiB);
    ram.put(0x260d848 + 0x1b600000, 0xffff9a4a40000000ull);
    auto t = table(isf(true));
    auto v = read_page_offset_base(t, ram, 0x1b600000, PagingMode::Long4);
    ASSERT_TRUE(v.ok()) << v.error();
    EXPECT_EQ(*v, 0xffff9a4a40000000ull);

    auto none = table(R"({"metadata": {"format": "6.2.0"}, "user_types": {}, "symbols": {}})");
    v = read_page_offset_base(none, ram, 0x1b600000, PagingMode::Long4);
    ASSERT_TRUE(v.ok()) << v.error();
    EXPECT_EQ(*v, 0xffff888000000000ull);

    v = read_page_offset_base(t, ram, 0, PagingMode::Long4);  // zeros there
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error(), "page_offset_base (physical 0x260d848) holds 0x0, not a kernel address");

    v = read_page_offset_base(t, ram, 0x40000000, PagingMode::Long4);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error(), "page_offset_base (physical 0x4260d848) is not in RAM");
}

TEST(KernelLocator, AnotherKernelsBanner) {
    FakeRam ram(512 * MiB);
    ram.put_string(0x5233620, "Linux version 5.10.0-21-amd64 (gcc-10) #1 SMP Debian\n");
    auto loc = locate_kernel(table(isf(true)), ram, 512 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "kernel banner mismatch: found 'Linux version 5.10.0-21-amd64 (gcc-10) #1 SMP "
              "Debian' at physical 0x5233620 where test.isf expects 'Linux version 6.1.0-test "
              "(gcc) #1 SMP PREEMPT_DYNAMIC' (the ISF is for another kernel)");
}

TEST(KernelLocator, NoBanner) {
    FakeRam ram(512 * MiB);
    auto loc = locate_kernel(table(isf(true)), ram, 512 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "kernel banner not found in physical memory below 0x20000000: expected 'Linux "
              "version 6.1.0-test (gcc) #1 SMP PREEMPT_DYNAMIC' where linux_banner (linked at "
              "0xffffffff82233620) can be loaded, at physical addresses ending in 0x620");

    loc = locate_kernel(table(isf(false)), ram, 512 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "kernel banner not found in physical memory below 0x20000000: expected a string "
              "starting with 'Linux version ' where linux_banner (linked at 0xffffffff82233620) "
              "can be loaded, at physical addresses ending in 0x620");
}

TEST(KernelLocator, BannerWithoutPageTables) {
    FakeRam ram(512 * MiB);
    ram.put_string(0x2233620, kBanner + std::string(1, '\0'));
    auto loc = locate_kernel(table(isf(true)), ram, 512 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "found the kernel banner 'Linux version 6.1.0-test (gcc) #1 SMP PREEMPT_DYNAMIC' at "
              "physical 0x2233620 but no virtual slide maps linux_banner (0xffffffff82233620) "
              "there through init_top_pgt (0xffffffff82233620 is not mapped in address space "
              "0x280a000 (PML4E not present))");
}

TEST(KernelLocator, UnsupportedLayouts) {
    FakeRam ram(64 * MiB);
    // An x86-64 table while the guest is in 32-bit mode: perhaps still
    // starting (not "unsupported": that is said once and for all).
    auto loc = locate_kernel(table(isf(true)), ram, 64 * MiB, PagingMode::Pae);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "the guest is not in 64-bit long mode (yet): test.isf describes an x86-64 kernel "
              "(the kernel is still starting, or the guest runs a 32-bit kernel and needs its "
              "own table)");

    loc = locate_kernel(table(isf(true, "", "4")), ram, 64 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "unsupported kernel layout: test.isf describes a 32-bit (i386) kernel, but the "
              "guest runs in 64-bit long mode (the table is for another kernel)");

    loc = locate_kernel(table(isf(true, "", "2")), ram, 64 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "unsupported kernel layout: test.isf describes a kernel with 2-byte pointers, "
              "expected an x86 kernel");

    loc = locate_kernel(table(isf(true, "", "4")), ram, 64 * MiB, PagingMode::Pae);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "unsupported kernel layout: test.isf describes a 32-bit kernel without "
              "swapper_pg_dir (expected an i386 kernel)");

    loc = locate_kernel(table(isf(true)), ram, 64 * MiB, PagingMode::None);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "the guest has not turned paging on yet (the kernel is still starting)");

    loc = locate_kernel(
        table(R"({"metadata": {"format": "6.2.0"}, "user_types": {}, "symbols": {
            "linux_banner": {"address": 3238002688}, "swapper_pg_dir": {"address": 3251634176}}})"),
        ram, 64 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "unsupported kernel layout: test.isf has neither init_top_pgt nor init_level4_pgt "
              "(expected an x86-64 kernel)");

    loc = locate_kernel(
        table(R"({"metadata": {"format": "6.2.0"}, "user_types": {}, "symbols": {
            "linux_banner": {"address": 3238002688}, "init_top_pgt": {"address": 3251634176}}})"),
        ram, 64 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "unsupported kernel layout: linux_banner is linked at 0xc1000000, expected an "
              "address in the x86-64 kernel image (from 0xffffffff80000000)");

    loc = locate_kernel(table(R"({"metadata": {"format": "6.2.0"}, "user_types": {}})"), ram,
                        64 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(), "test.isf has no linux_banner symbol, which locating the kernel needs");
}

TEST(KernelLocator, OlderKernelsPgdSymbol) {
    FakeRam ram(512 * MiB);
    Kernel k(ram, 0x1000000, 0x2000000);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    std::string text = isf(true);
    const std::string from = "\"init_top_pgt\"";
    text.replace(text.find(from), from.size(), "\"init_level4_pgt\"");
    expect_location(locate_kernel(table(text), ram, 512 * MiB), 0x1000000, 0x2000000,
                    0xffff888000000000ull);
}

// The kernel's own data the locator checks a slide against: init_mm (whose
// pgd is init_top_pgt at its run-time address) and init_task.
constexpr uint64_t kInitMmVa = 0xffffffff82900000ull;
constexpr uint64_t kInitTaskVa = 0xffffffff82910000ull;
constexpr uint64_t kMmPgd = 0x48;  // in an anonymous struct, as on 6.1
constexpr uint64_t kTasks = 0x10, kTaskMm = 0x20, kComm = 0x30;

std::string isf_with_kernel_data() {
    std::string text = isf(true, R"(,
        "init_mm": {"address": 18446744071605059584},
        "init_task": {"address": 18446744071605125120})");
    const std::string types = R"("user_types": {
        "mm_struct": {"kind": "struct", "size": 256, "fields": {
          "unnamed_field_0": {"offset": 0, "anonymous": true,
                              "type": {"kind": "struct", "name": "mm_inner"}}}},
        "mm_inner": {"kind": "struct", "size": 256, "fields": {
          "pgd": {"offset": 72, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "pointer"}}}}},
        "list_head": {"kind": "struct", "size": 16, "fields": {
          "next": {"offset": 0, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "list_head"}}},
          "prev": {"offset": 8, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "list_head"}}}}},
        "task_struct": {"kind": "struct", "size": 256, "fields": {
          "tasks": {"offset": 16, "type": {"kind": "struct", "name": "list_head"}},
          "mm": {"offset": 32, "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "mm_struct"}}},
          "comm": {"offset": 48, "type": {"kind": "array", "count": 16, "subtype": {"kind": "base", "name": "pointer"}}}}}})";
    text.replace(text.find(R"("user_types": {})"), std::string(R"("user_types": {})").size(), types);
    return text;
}

// init_mm and init_task as the image holds them at `virt_slide`: init_mm.pgd
// relocated, init_task alone on its task list.
void put_kernel_data(FakeRam& ram, const Kernel& k, uint64_t virt_slide) {
    ram.put(k.pa(kInitMmVa) + kMmPgd, kPgdVa + virt_slide);
    const uint64_t head = kInitTaskVa + virt_slide + kTasks;
    ram.put(k.pa(kInitTaskVa) + kTasks, head);
    ram.put(k.pa(kInitTaskVa) + kTasks + 8, head);
    ram.put_string(k.pa(kInitTaskVa) + kComm, std::string("swapper/0") + std::string(7, '\0'));
}

TEST(KernelLocator, TheKernelsOwnDataConfirmTheSlide) {
    FakeRam ram(512 * MiB);
    Kernel k(ram, 0x9c00000, 0x1a600000);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    put_kernel_data(ram, k, 0x1a600000);
    auto symbols = table(isf_with_kernel_data());
    ASSERT_EQ(symbols.member_offset("mm_struct", "pgd"), kMmPgd);
    auto loc = locate_kernel(symbols, ram, 512 * MiB);
    expect_location(loc, 0x9c00000, 0x1a600000, 0xffff888000000000ull);
    auto ok = verify_location(symbols, ram, PagingMode::Long4, *loc);
    EXPECT_TRUE(ok.ok()) << ok.error();
}

// The state the kernel is in at its first CR3 loads (startup_64, then
// reset_early_page_tables in x86_64_start_kernel): init_top_pgt still holds
// its link-time entry 511 plus the virtual slide, which points at whatever
// page is there (here a page of kernel text), and that page's entry 510
// reads as a present 1 GiB page at physical 0: the kernel half is an
// identity map, in which linux_banner "maps" for the virtual slide equal to
// the physical one.
class EarlyTables {
public:
    EarlyTables(FakeRam& ram, uint64_t phys_slide, uint64_t virt_slide)
        : ram_(ram), k_(ram, phys_slide, virt_slide) {
        ram.put(k_.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
        put_kernel_data(ram, k_, virt_slide);
        final_511_ = ram.get(k_.pa(kPgdVa) + 511 * 8);
        // level3_kernel_pgt's link-time physical address + the virtual slide
        // lands in the image's text, 18 MiB below level3_kernel_pgt.
        const uint64_t text_page = k_.pa(kText) + 0x815000;
        ram.put(text_page + 510 * 8, 0x480000002825048bull);  // mov rax, gs:0x28 ...
        ram.put(k_.pa(kPgdVa) + 511 * 8, text_page | P | RW);
    }
    // x86_64_start_kernel: init_top_pgt[511] = early_top_pgt[511].
    void finish() { ram_.put(k_.pa(kPgdVa) + 511 * 8, final_511_); }

private:
    FakeRam& ram_;
    Kernel k_;
    uint64_t final_511_ = 0;
};

TEST(KernelLocator, EarlyPageTablesThatMapTheBannerAtThePhysicalSlideAreNotTaken) {
    FakeRam ram(512 * MiB);
    const uint64_t ps = 0x15a00000, vs = 0x20a00000;
    EarlyTables early(ram, ps, vs);
    auto symbols = table(isf_with_kernel_data());
    auto loc = locate_kernel(symbols, ram, 512 * MiB);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.error(),
              "found the kernel banner 'Linux version 6.1.0-test (gcc) #1 SMP PREEMPT_DYNAMIC' at "
              "physical 0x17c33620 but the kernel's page tables and data do not agree yet (the "
              "kernel is still setting them up, or the ISF is for another build): virtual slide "
              "0x15a00000: init_mm.pgd holds 0xffffffffa320a000, not init_top_pgt at "
              "0xffffffff9820a000 (virtual slide 0x15a00000)");
    // A location taken then (before the check) no longer holds once the
    // kernel has its own tables...
    KernelLocation wrong;
    wrong.phys_slide = ps;
    wrong.virt_slide = ps;
    wrong.pgd_paddr = kPgdVa - kStart + ps;
    wrong.banner_paddr = kBannerVa - kStart + ps;
    early.finish();
    auto stale = verify_location(symbols, ram, PagingMode::Long4, wrong);
    ASSERT_FALSE(stale.ok());
    EXPECT_EQ(stale.error(),
              "linux_banner is not mapped through init_top_pgt: 0xffffffff97c33620 is not mapped "
              "in address space 0x1820a000 (PDE not present)");
    // ... and the kernel is found at its slides.
    expect_location(locate_kernel(symbols, ram, 512 * MiB), ps, vs, 0xffff888000000000ull);
}

TEST(KernelLocator, WithoutInitMmAndInitTaskTheEarlyTablesMislead) {
    // Why the kernel's data are checked: on the page tables alone the
    // identity map gives the physical slide as the virtual one.
    FakeRam ram(512 * MiB);
    EarlyTables early(ram, 0x15a00000, 0x20a00000);
    auto loc = locate_kernel(table(isf(true)), ram, 512 * MiB);
    ASSERT_TRUE(loc.ok()) << loc.error();
    EXPECT_EQ(loc->virt_slide, 0x15a00000u);
}

TEST(KernelLocator, VerifyLocationNamesTheCheckThatFails) {
    FakeRam ram(512 * MiB);
    const uint64_t ps = 0x4000000, vs = 0x8000000;
    Kernel k(ram, ps, vs);
    ram.put(k.pa(kPageOffsetBaseVa), 0xffff888000000000ull);
    put_kernel_data(ram, k, vs);
    auto symbols = table(isf_with_kernel_data());
    auto loc = locate_kernel(symbols, ram, 512 * MiB);
    ASSERT_TRUE(loc.ok()) << loc.error();
    auto expect_error = [&](const std::string& message) {
        auto v = verify_location(symbols, ram, PagingMode::Long4, *loc);
        ASSERT_FALSE(v.ok());
        EXPECT_EQ(v.error(), message);
        put_kernel_data(ram, k, vs);  // repaired for the next case
        ram.put(k.pa(kInitTaskVa) + kTaskMm, 0);
    };
    const uint64_t head = kInitTaskVa + vs + kTasks;  // 0xffffffff8a910010
    ram.put_string(k.pa(kInitTaskVa) + kComm, std::string("init\0", 5));
    expect_error("init_task.comm is 'init', not 'swapper'");
    ram.put(k.pa(kInitTaskVa) + kTaskMm, 0xffff888004c3a000ull);
    expect_error("init_task.mm is 0xffff888004c3a000, not NULL");
    ram.put(k.pa(kInitTaskVa) + kTasks, 0x1234);
    expect_error("init_task.tasks.next is 0x1234, not a kernel address");
    ram.put(k.pa(kInitTaskVa) + kTasks + 8, head + 0x100);  // next (the head) ->prev
    expect_error("init_task.tasks.next->prev is 0xffffffff8a910110, not init_task.tasks at "
                 "0xffffffff8a910010");
    ram.put(k.pa(kInitTaskVa) + kTasks + 8, head + 0x100);  // and next is another task
    ram.put(k.pa(kInitTaskVa) + kTasks, head + 0x200);
    ram.put(k.pa(kInitTaskVa) + kTasks + 0x208, head);
    expect_error("init_task.tasks.prev->next is 0x0, not init_task.tasks at 0xffffffff8a910010");
    ram.put(k.pa(kInitTaskVa) + kTasks, 0xffffffffc0000000ull);
    expect_error(
        "cannot read init_task.tasks.next->prev (at 0xffffffffc0000008): 0xffffffffc0000008 is "
        "not mapped in address space 0x680a000 (PDPTE not present)");
    ram.put(k.pa(kInitMmVa) + kMmPgd, kPgdVa);
    expect_error("init_mm.pgd holds 0xffffffff8280a000, not init_top_pgt at 0xffffffff8a80a000 "
                 "(virtual slide 0x8000000)");
    ram.put_string(k.pa(kBannerVa), "Linux version 7");
    expect_error("linux_banner is no longer at physical 0x6233620");
    ram.put_string(k.pa(kBannerVa), kBanner + std::string(1, '\0'));
    auto again = verify_location(symbols, ram, PagingMode::Long4, *loc);
    EXPECT_TRUE(again.ok()) << again.error();
}

}  // namespace

// ---- i386 ----

namespace {

constexpr uint64_t k32PageOffset = 0xc0000000ull;
constexpr uint64_t k32Text = 0xc1000000ull;
constexpr uint64_t k32Banner = 0xc1a2c180ull;
constexpr uint64_t k32Pgd = 0xc1e98000ull;  // swapper_pg_dir: a PAE PDPT
constexpr uint64_t k32InitMm = 0xc1d06700ull;
constexpr uint64_t k32InitTask = 0xc1c5f4c0ull;

// An i386 table: 4-byte pointers, swapper_pg_dir, startup_32 and the
// linker's phys_startup_32 (PAGE_OFFSET is their difference), init_mm and
// init_task with 32-bit layouts.
std::string isf32(uint64_t page_offset = k32PageOffset) {
    const uint64_t text = page_offset + 0x1000000;
    const uint64_t d = text - k32Text;  // the same image linked at another PAGE_OFFSET
    return R"({"metadata": {"format": "6.2.0"},
      "base_types": {"pointer": {"size": 4, "signed": false, "kind": "int", "endian": "little"}},
      "user_types": {
        "mm_struct": {"kind": "struct", "size": 64, "fields": {
          "pgd": {"offset": 36, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}}}},
        "task_struct": {"kind": "struct", "size": 2048, "fields": {
          "tasks": {"offset": 968, "type": {"kind": "struct", "name": "list_head"}},
          "mm": {"offset": 1000, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}},
          "comm": {"offset": 1412, "type": {"kind": "array", "count": 16, "subtype": {"kind": "base", "name": "char"}}}}}},
      "enums": {},
      "symbols": {
        "_text": {"address": )" + std::to_string(text) + R"(},
        "startup_32": {"address": )" + std::to_string(text) + R"(},
        "phys_startup_32": {"address": 16777216},
        "linux_banner": {"address": )" + std::to_string(k32Banner + d) + R"(,
          "constant_data": "TGludXggdmVyc2lvbiA2LjEuMC10ZXN0IChnY2MpICMxIFNNUCBQUkVFTVBUX0RZTkFNSUMKAA=="},
        "swapper_pg_dir": {"address": )" + std::to_string(k32Pgd + d) + R"(},
        "init_mm": {"address": )" + std::to_string(k32InitMm + d) + R"(},
        "init_task": {"address": )" + std::to_string(k32InitTask + d) + R"(}}})";
}

void put32(FakeRam& ram, uint64_t paddr, uint32_t value) {
    for (int i = 0; i < 4; ++i) {
        ram.put_string(paddr + i, std::string(1, static_cast<char>(value >> (8 * i))));
    }
}

// An i386 PAE kernel loaded at physical 16 MiB + `slide` and mapped, as
// Linux maps it, in the direct map: virtual PAGE_OFFSET + physical, the
// first 64 MiB with 2 MiB pages (one page directory under PDPT entry 3).
// init_mm.pgd, init_task's list, mm and comm are filled in as the kernel's.
void make_kernel32(FakeRam& ram, uint64_t slide) {
    const uint64_t pdpt = k32Pgd - k32PageOffset + slide;
    const uint64_t pd = 64 * MiB;  // above the image
    ram.put(pdpt + 3 * 8, pd | P);
    for (uint64_t off = 0; off < 64 * MiB; off += 2 * MiB) {
        ram.put(pd + (off >> 21) * 8, off | P | RW | PS);
    }
    ram.put_string(k32Banner - k32PageOffset + slide, kBanner + std::string(1, '\0'));
    put32(ram, k32InitMm - k32PageOffset + slide + 36, static_cast<uint32_t>(k32Pgd + slide));
    const uint64_t task = k32InitTask + slide;
    const uint64_t head = task + 968;
    put32(ram, head - k32PageOffset, static_cast<uint32_t>(head));      // next
    put32(ram, head + 4 - k32PageOffset, static_cast<uint32_t>(head));  // prev
    ram.put_string(task + 1412 - k32PageOffset, std::string("swapper/0") + '\0');
}

TEST(KernelLocator32, PaeWithoutKaslr) {
    FakeRam ram(128 * MiB);
    make_kernel32(ram, 0);
    auto loc = locate_kernel(table(isf32()), ram, 128 * MiB, PagingMode::Pae);
    ASSERT_TRUE(loc.ok()) << loc.error();
    EXPECT_EQ(loc->phys_slide, 0u);
    EXPECT_EQ(loc->virt_slide, 0u);
    EXPECT_EQ(loc->pgd_paddr, 0x1e98000u);
    EXPECT_EQ(loc->banner_paddr, 0x1a2c180u);
    EXPECT_EQ(loc->page_offset_base, k32PageOffset);
    EXPECT_TRUE(verify_location(table(isf32()), ram, PagingMode::Pae, *loc).ok());
}

TEST(KernelLocator32, PaeKaslrMovesBothAddressesAlike) {
    FakeRam ram(128 * MiB);
    make_kernel32(ram, 6 * MiB);
    auto loc = locate_kernel(table(isf32()), ram, 128 * MiB, PagingMode::Pae);
    ASSERT_TRUE(loc.ok()) << loc.error();
    EXPECT_EQ(loc->phys_slide, 6 * MiB);
    EXPECT_EQ(loc->virt_slide, 6 * MiB);
    EXPECT_EQ(loc->pgd_paddr, 0x1e98000u + 6 * MiB);
    EXPECT_EQ(loc->banner_paddr, 0x1a2c180u + 6 * MiB);
}

TEST(KernelLocator32, TheKernelsDataMustAgree) {
    FakeRam ram(128 * MiB);
    make_kernel32(ram, 0);
    put32(ram, k32InitMm - k32PageOffset + 36, 0x12345000);
    auto loc = locate_kernel(table(isf32()), ram, 128 * MiB, PagingMode::Pae);
    ASSERT_FALSE(loc.ok());
    EXPECT_NE(loc.error().find("virtual slide 0x0: init_mm.pgd holds 0x12345000, not "
                               "swapper_pg_dir at 0xc1e98000"),
              std::string::npos)
        << loc.error();
}

TEST(KernelLocator32, PageOffsetFromTheImagesLinkAddresses) {
    // A 2G/2G split kernel (PAGE_OFFSET 0x80000000) with its tables under
    // PDPT entry 2.
    FakeRam ram(128 * MiB);
    const uint64_t d = k32PageOffset - 0x80000000ull;
    const uint64_t pdpt = k32Pgd - k32PageOffset;
    const uint64_t pd = 64 * MiB;
    ram.put(pdpt + 2 * 8, pd | P);
    for (uint64_t off = 0; off < 64 * MiB; off += 2 * MiB) {
        ram.put(pd + (off >> 21) * 8, off | P | RW | PS);
    }
    ram.put_string(k32Banner - k32PageOffset, kBanner + std::string(1, '\0'));
    put32(ram, k32InitMm - k32PageOffset + 36, static_cast<uint32_t>(k32Pgd - d));
    const uint64_t head = k32InitTask - d + 968;
    put32(ram, head - 0x80000000ull, static_cast<uint32_t>(head));
    put32(ram, head + 4 - 0x80000000ull, static_cast<uint32_t>(head));
    ram.put_string(k32InitTask - k32PageOffset + 1412, std::string("swapper/0") + '\0');
    auto loc = locate_kernel(table(isf32(0x80000000ull)), ram, 128 * MiB, PagingMode::Pae);
    ASSERT_TRUE(loc.ok()) << loc.error();
    EXPECT_EQ(loc->page_offset_base, 0x80000000u);
    EXPECT_EQ(loc->pgd_paddr, 0x1e98000u);
}

}  // namespace
