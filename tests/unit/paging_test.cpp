#include "vmi/paging.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <map>
#include <vector>

namespace {

using pyrebox::vmi::normalize_pgd;
using pyrebox::vmi::paging_mode;
using pyrebox::vmi::PagingMode;
using pyrebox::vmi::PhysicalMemory;
using pyrebox::vmi::read_virtual;
using pyrebox::vmi::translate;
using pyrebox::vmi::write_virtual;

constexpr uint64_t P = 1ull << 0;
constexpr uint64_t RW = 1ull << 1;
constexpr uint64_t US = 1ull << 2;
constexpr uint64_t PS = 1ull << 7;
constexpr uint64_t NX = 1ull << 63;

// Guest RAM made of the 4K pages a test touches; everything else is not RAM.
class FakeRam : public PhysicalMemory {
public:
    bool read(uint64_t paddr, void* buf, size_t len) override {
        if (!backed(paddr, len)) {
            return false;
        }
        auto* out = static_cast<uint8_t*>(buf);
        for (size_t i = 0; i < len; ++i) {
            out[i] = pages_[(paddr + i) & ~0xFFFull][(paddr + i) & 0xFFF];
        }
        return true;
    }

    bool write(uint64_t paddr, const void* buf, size_t len) override {
        ++writes;
        if (!backed(paddr, len)) {
            return false;
        }
        const auto* in = static_cast<const uint8_t*>(buf);
        for (size_t i = 0; i < len; ++i) {
            pages_[(paddr + i) & ~0xFFFull][(paddr + i) & 0xFFF] = in[i];
        }
        return true;
    }

    // Stores `value` little-endian in `size` bytes, making the page RAM.
    void put(uint64_t paddr, uint64_t value, size_t size = 8) {
        for (size_t i = 0; i < size; ++i) {
            page(paddr + i)[(paddr + i) & 0xFFF] = static_cast<uint8_t>(value >> (8 * i));
        }
    }

    void put_bytes(uint64_t paddr, std::vector<uint8_t> bytes) {
        for (size_t i = 0; i < bytes.size(); ++i) {
            page(paddr + i)[(paddr + i) & 0xFFF] = bytes[i];
        }
    }

    std::vector<uint8_t> bytes(uint64_t paddr, size_t len) {
        std::vector<uint8_t> out(len);
        EXPECT_TRUE(read(paddr, out.data(), len));
        return out;
    }

    std::array<uint8_t, 4096>& page(uint64_t paddr) { return pages_[paddr & ~0xFFFull]; }

    int writes = 0;

private:
    bool backed(uint64_t paddr, size_t len) const {
        for (uint64_t p = paddr & ~0xFFFull; p < paddr + len; p += 0x1000) {
            if (!pages_.count(p)) {
                return false;
            }
        }
        return true;
    }

    std::map<uint64_t, std::array<uint8_t, 4096>> pages_;
};

// The 64-bit entry for `vaddr` in the table at `table`, at the level whose
// index starts at bit `shift`.
void set_entry(FakeRam& ram, uint64_t table, uint64_t vaddr, unsigned shift, uint64_t value) {
    ram.put(table + ((vaddr >> shift) & 511) * 8, value);
}

// A 4-level address space rooted at 0x1000 with one PDPT (0x2000), PD
// (0x3000) and PT (0x4000) covering `vaddr`; the PTE is left to the test.
constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x4000;

void long4_tables(FakeRam& ram, uint64_t vaddr) {
    set_entry(ram, kPml4, vaddr, 39, kPdpt | P | RW | US);
    set_entry(ram, kPdpt, vaddr, 30, kPd | P | RW | US);
    set_entry(ram, kPd, vaddr, 21, kPt | P | RW | US);
    ram.page(kPt);
}

// ---- paging_mode ----

constexpr uint64_t kPg = 1ull << 31, kPae = 1ull << 5, kPse = 1ull << 4, kLa57 = 1ull << 12,
                   kLma = 1ull << 10;

TEST(PagingMode, PagingOffIsNoneWhateverElseIsSet) {
    EXPECT_EQ(paging_mode(0x11, kPae | kPse | kLa57, 0), PagingMode::None);
    EXPECT_EQ(paging_mode(0, 0, 0), PagingMode::None);
}

TEST(PagingMode, ProtectedModeWithoutPae) {
    EXPECT_EQ(paging_mode(kPg | 1, 0, 0), PagingMode::Legacy32);
    EXPECT_EQ(paging_mode(kPg | 1, kPse, 0), PagingMode::Legacy32);
}

TEST(PagingMode, PaeWithoutLongMode) {
    EXPECT_EQ(paging_mode(kPg | 1, kPae, 0), PagingMode::Pae);
    EXPECT_EQ(paging_mode(kPg | 1, kPae | kPse, 0), PagingMode::Pae);
    // LA57 only means something in long mode.
    EXPECT_EQ(paging_mode(kPg | 1, kPae | kLa57, 0), PagingMode::Pae);
}

TEST(PagingMode, LongModeFourAndFiveLevels) {
    EXPECT_EQ(paging_mode(0x80050033, 0x3506f0 & ~kLa57, kLma | 0x501), PagingMode::Long4);
    EXPECT_EQ(paging_mode(kPg | 1, kPae | kLa57, kLma), PagingMode::Long5);
}

// ---- normalize_pgd ----

TEST(NormalizePgd, LongModeDropsPcidFlagsAndHighBits) {
    EXPECT_EQ(normalize_pgd(0x8000000012345ABCull, PagingMode::Long4, false), 0x12345000u);
    EXPECT_EQ(normalize_pgd(0x7FF0000012345018ull, PagingMode::Long5, false), 0x12345000u);
}

TEST(NormalizePgd, KptiMergesTheKernelAndUserPgd) {
    EXPECT_EQ(normalize_pgd(0x12347801, PagingMode::Long4, false), 0x12347000u);
    EXPECT_EQ(normalize_pgd(0x12347801, PagingMode::Long4, true), 0x12346000u);
    EXPECT_EQ(normalize_pgd(0x12346000, PagingMode::Long4, true), 0x12346000u);
    EXPECT_EQ(normalize_pgd(0x8000000012347001ull, PagingMode::Long5, true), 0x12346000u);
}

TEST(NormalizePgd, ThirtyTwoBitModes) {
    EXPECT_EQ(normalize_pgd(0x12345FF8, PagingMode::Pae, false), 0x12345FE0u);
    // i386 KPTI: the user half of the 8K pair (bit 12) names the same process.
    EXPECT_EQ(normalize_pgd(0x12347018, PagingMode::Pae, true), 0x12346000u);
    EXPECT_EQ(normalize_pgd(0x12347018, PagingMode::Pae, false), 0x12347000u);
    EXPECT_EQ(normalize_pgd(0x123456789ull, PagingMode::Pae, false), 0x23456780u);
    EXPECT_EQ(normalize_pgd(0x12345FFF, PagingMode::Legacy32, false), 0x12345000u);
    EXPECT_EQ(normalize_pgd(0x12347FFF, PagingMode::Legacy32, true), 0x12346000u);
    EXPECT_EQ(normalize_pgd(0x12347FFF, PagingMode::Legacy32, false), 0x12347000u);
}

TEST(NormalizePgd, NoPagingHasOneAddressSpace) {
    EXPECT_EQ(normalize_pgd(0x12345000, PagingMode::None, true), 0u);
}

// ---- translate: 4-level ----

TEST(TranslateLong4, FourKilobytePage) {
    FakeRam ram;
    const uint64_t va = 0x00007F1234567ABCull;
    long4_tables(ram, va);
    set_entry(ram, kPt, va, 12, 0x9000 | P | RW | US);
    const auto t = translate(ram, PagingMode::Long4, kPml4, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x9ABCu);
    EXPECT_EQ(t->page_size, 0x1000u);
    EXPECT_TRUE(t->writable);
    EXPECT_TRUE(t->user);
    EXPECT_FALSE(t->nx);
}

TEST(TranslateLong4, PteBitSevenIsPatNotALargePage) {
    FakeRam ram;
    const uint64_t va = 0x400123;
    long4_tables(ram, va);
    set_entry(ram, kPt, va, 12, 0x9000 | PS | P);
    const auto t = translate(ram, PagingMode::Long4, kPml4, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x9123u);
    EXPECT_EQ(t->page_size, 0x1000u);
}

TEST(TranslateLong4, TwoMegabytePageIgnoresItsPatBit) {
    FakeRam ram;
    const uint64_t va = 0x7F0000323456ull;  // 0x123456 into its 2M page
    set_entry(ram, kPml4, va, 39, kPdpt | P | RW | US);
    set_entry(ram, kPdpt, va, 30, kPd | P | RW | US);
    set_entry(ram, kPd, va, 21, 0x40000000 | (1ull << 12) | PS | P | RW);
    const auto t = translate(ram, PagingMode::Long4, kPml4, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x40123456u);
    EXPECT_EQ(t->page_size, 0x200000u);
    EXPECT_TRUE(t->writable);
    EXPECT_FALSE(t->user);
}

TEST(TranslateLong4, OneGigabytePage) {
    FakeRam ram;
    const uint64_t va = 0xFFFF888012345678ull;  // 0x12345678 into its 1G page
    set_entry(ram, kPml4, va, 39, kPdpt | P | RW);
    set_entry(ram, kPdpt, va, 30, 0x80000000 | PS | P | RW | NX);
    const auto t = translate(ram, PagingMode::Long4, kPml4, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x92345678u);
    EXPECT_EQ(t->page_size, 0x40000000u);
    EXPECT_TRUE(t->writable);
    EXPECT_FALSE(t->user);
    EXPECT_TRUE(t->nx);
}

TEST(TranslateLong4, NotPresentAtEachLevel) {
    const uint64_t va = 0x400000;
    {
        FakeRam ram;
        ram.page(kPml4);
        const auto t = translate(ram, PagingMode::Long4, 0x1000, va);
        ASSERT_FALSE(t.ok());
        EXPECT_EQ(t.error(), "0x400000 is not mapped in address space 0x1000 (PML4E not present)");
    }
    {
        FakeRam ram;
        set_entry(ram, kPml4, va, 39, kPdpt | RW | US);  // entry without P
        ram.page(kPdpt);
        const auto t = translate(ram, PagingMode::Long4, kPml4, va);
        ASSERT_FALSE(t.ok());
        EXPECT_EQ(t.error(), "0x400000 is not mapped in address space 0x1000 (PML4E not present)");
    }
    {
        FakeRam ram;
        set_entry(ram, kPml4, va, 39, kPdpt | P);
        ram.page(kPdpt);
        const auto t = translate(ram, PagingMode::Long4, kPml4, va);
        ASSERT_FALSE(t.ok());
        EXPECT_EQ(t.error(), "0x400000 is not mapped in address space 0x1000 (PDPTE not present)");
    }
    {
        FakeRam ram;
        set_entry(ram, kPml4, va, 39, kPdpt | P);
        set_entry(ram, kPdpt, va, 30, kPd | P);
        ram.page(kPd);
        const auto t = translate(ram, PagingMode::Long4, kPml4, va);
        ASSERT_FALSE(t.ok());
        EXPECT_EQ(t.error(), "0x400000 is not mapped in address space 0x1000 (PDE not present)");
    }
    {
        FakeRam ram;
        long4_tables(ram, va);
        const auto t = translate(ram, PagingMode::Long4, kPml4, va);
        ASSERT_FALSE(t.ok());
        EXPECT_EQ(t.error(), "0x400000 is not mapped in address space 0x1000 (PTE not present)");
    }
}

TEST(TranslateLong4, TableOutsideRamNamesTheEntryAddress) {
    FakeRam ram;
    const uint64_t va = 0x40400000;  // PDPT index 1
    set_entry(ram, kPml4, va, 39, 0x100000 | P | RW);
    const auto t = translate(ram, PagingMode::Long4, kPml4, va);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error(),
              "0x40400000 is not mapped in address space 0x1000 "
              "(PDPTE at physical 0x100008 is not in RAM)");
}

TEST(TranslateLong4, RootOutsideRam) {
    FakeRam ram;
    const auto t = translate(ram, PagingMode::Long4, 0x5000, 0x1000);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error(),
              "0x1000 is not mapped in address space 0x5000 (PML4E at physical 0x5000 is not in RAM)");
}

TEST(TranslateLong4, PsInPml4eIsReserved) {
    FakeRam ram;
    set_entry(ram, kPml4, 0x1000, 39, 0x80000000 | PS | P | RW);
    const auto t = translate(ram, PagingMode::Long4, kPml4, 0x1000);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error(),
              "0x1000 is not mapped in address space 0x1000 (PML4E has the reserved PS bit set)");
}

TEST(TranslateLong4, RightsCombineOverAllLevels) {
    const uint64_t va = 0x400000;
    {
        // R/W clear in the PDE only: not writable.
        FakeRam ram;
        set_entry(ram, kPml4, va, 39, kPdpt | P | RW | US);
        set_entry(ram, kPdpt, va, 30, kPd | P | RW | US);
        set_entry(ram, kPd, va, 21, kPt | P | US);
        set_entry(ram, kPt, va, 12, 0x9000 | P | RW | US);
        const auto t = translate(ram, PagingMode::Long4, kPml4, va);
        ASSERT_TRUE(t.ok()) << t.error();
        EXPECT_FALSE(t->writable);
        EXPECT_TRUE(t->user);
        EXPECT_FALSE(t->nx);
    }
    {
        // U/S clear in the PTE only, XD set in the PML4E only.
        FakeRam ram;
        set_entry(ram, kPml4, va, 39, kPdpt | P | RW | US | NX);
        set_entry(ram, kPdpt, va, 30, kPd | P | RW | US);
        set_entry(ram, kPd, va, 21, kPt | P | RW | US);
        set_entry(ram, kPt, va, 12, 0x9000 | P | RW);
        const auto t = translate(ram, PagingMode::Long4, kPml4, va);
        ASSERT_TRUE(t.ok()) << t.error();
        EXPECT_TRUE(t->writable);
        EXPECT_FALSE(t->user);
        EXPECT_TRUE(t->nx);
    }
}

TEST(TranslateLong4, EntryAddressUsesFiftyTwoBitsAndIgnoresHighFlagBits) {
    FakeRam ram;
    const uint64_t va = 0x400000;
    long4_tables(ram, va);
    // Bits 52..62 are available to software / protection keys; not address.
    set_entry(ram, kPt, va, 12, 0x7FF0000000000000ull | 0x000FFFFFFFFFF000ull | P);
    const auto t = translate(ram, PagingMode::Long4, kPml4, va + 0x10);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x000FFFFFFFFFF010ull);
}

TEST(TranslateLong4, Cr3PcidFlagsAndBit63AreIgnored) {
    FakeRam ram;
    const uint64_t va = 0x400123;
    long4_tables(ram, va);
    set_entry(ram, kPt, va, 12, 0x9000 | P);
    const uint64_t cr3 = 0x8000000000000000ull | kPml4 | 0x123;
    const auto t = translate(ram, PagingMode::Long4, cr3, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x9123u);
    // Errors name the address space as the caller gave it.
    const auto missing = translate(ram, PagingMode::Long4, cr3, 0x401000);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error(),
              "0x401000 is not mapped in address space 0x8000000000001123 (PTE not present)");
}

TEST(TranslateLong4, NonCanonicalAddressesAreRejectedBeforeTheWalk) {
    FakeRam ram;  // empty: a walk would fail differently
    const auto low = translate(ram, PagingMode::Long4, kPml4, 0x0000800000000000ull);
    ASSERT_FALSE(low.ok());
    EXPECT_EQ(low.error(), "0x800000000000 is not mapped in address space 0x1000 (not canonical)");
    const auto hole = translate(ram, PagingMode::Long4, kPml4, 0xFFFF7FFFFFFFFFFFull);
    ASSERT_FALSE(hole.ok());
    EXPECT_EQ(hole.error(),
              "0xffff7fffffffffff is not mapped in address space 0x1000 (not canonical)");
    const auto top = translate(ram, PagingMode::Long4, kPml4, 0x0100000000000000ull);
    ASSERT_FALSE(top.ok());
    EXPECT_EQ(top.error(),
              "0x100000000000000 is not mapped in address space 0x1000 (not canonical)");
    // The lowest canonical high-half address passes the check and is walked.
    const auto high = translate(ram, PagingMode::Long4, kPml4, 0xFFFF800000000000ull);
    ASSERT_FALSE(high.ok());
    EXPECT_EQ(high.error(),
              "0xffff800000000000 is not mapped in address space 0x1000 "
              "(PML4E at physical 0x1800 is not in RAM)");
}

// ---- translate: 5-level ----

TEST(TranslateLong5, FourKilobytePageThroughFiveLevels) {
    FakeRam ram;
    const uint64_t va = 0x0012345678ABCDEFull;
    const uint64_t pml5 = 0x8000;
    set_entry(ram, pml5, va, 48, kPml4 | P | RW | US);
    long4_tables(ram, va);
    set_entry(ram, kPt, va, 12, 0x9000 | P | RW | US);
    const auto t = translate(ram, PagingMode::Long5, pml5, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x9DEFu);
    EXPECT_EQ(t->page_size, 0x1000u);
    // The same address is not canonical with 4 levels.
    const auto four = translate(ram, PagingMode::Long4, pml5, va);
    ASSERT_FALSE(four.ok());
    EXPECT_EQ(four.error(),
              "0x12345678abcdef is not mapped in address space 0x8000 (not canonical)");
}

TEST(TranslateLong5, OneGigabytePageAndCanonicalCheck) {
    FakeRam ram;
    const uint64_t va = 0xFF80000000000042ull;  // canonical with 57 bits
    const uint64_t pml5 = 0x8000;
    set_entry(ram, pml5, va, 48, kPml4 | P | RW);
    set_entry(ram, kPml4, va, 39, kPdpt | P | RW);
    set_entry(ram, kPdpt, va, 30, 0xC0000000 | PS | P | RW);
    const auto t = translate(ram, PagingMode::Long5, pml5, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0xC0000042u);
    EXPECT_EQ(t->page_size, 0x40000000u);
    const auto bad = translate(ram, PagingMode::Long5, pml5, 0xFE00000000000000ull);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error(),
              "0xfe00000000000000 is not mapped in address space 0x8000 (not canonical)");
}

TEST(TranslateLong5, Pml5eNotPresent) {
    FakeRam ram;
    ram.page(0x8000);
    const auto t = translate(ram, PagingMode::Long5, 0x8000, 0x400000);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error(), "0x400000 is not mapped in address space 0x8000 (PML5E not present)");
}

// ---- translate: PAE ----

// A PAE address space whose PDPT sits at 0x12345FE0 (32-byte aligned, not
// page aligned), with a PD at 0x20000 and a PT at 0x21000.
constexpr uint64_t kPaePdpt = 0x12345FE0, kPaePd = 0x20000, kPaePt = 0x21000;

TEST(TranslatePae, FourKilobytePageAboveFourGigabytes) {
    FakeRam ram;
    const uint64_t va = 0xC0801234;  // PDPTE 3, PDE 4, PTE 1
    ram.put(kPaePdpt + 3 * 8, kPaePd | P);
    ram.put(kPaePd + 4 * 8, kPaePt | P | RW | US);
    ram.put(kPaePt + 1 * 8, 0x100005000ull | P | RW | US | NX);
    const auto t = translate(ram, PagingMode::Pae, kPaePdpt | 0x18, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x100005234ull);
    EXPECT_EQ(t->page_size, 0x1000u);
    // A PDPTE has no R/W or U/S bits; the PDE and PTE decide.
    EXPECT_TRUE(t->writable);
    EXPECT_TRUE(t->user);
    EXPECT_TRUE(t->nx);
}

TEST(TranslatePae, TwoMegabytePage) {
    FakeRam ram;
    const uint64_t va = 0x00A12345;  // PDPTE 0, PDE 5, 0x12345 into the page
    ram.put(kPaePdpt, kPaePd | P);
    ram.put(kPaePd + 5 * 8, 0x7E00000 | PS | P | US);
    const auto t = translate(ram, PagingMode::Pae, kPaePdpt, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x7E12345u);
    EXPECT_EQ(t->page_size, 0x200000u);
    EXPECT_FALSE(t->writable);
    EXPECT_TRUE(t->user);
    EXPECT_FALSE(t->nx);
}

TEST(TranslatePae, NotPresentAtEachLevel) {
    FakeRam ram;
    ram.put(kPaePdpt + 1 * 8, kPaePd | P);
    ram.put(kPaePd + 0 * 8, kPaePt | P);
    ram.page(kPaePt);
    auto t = translate(ram, PagingMode::Pae, kPaePdpt, 0x00000000);
    EXPECT_EQ(t.error(), "0x0 is not mapped in address space 0x12345fe0 (PDPTE not present)");
    t = translate(ram, PagingMode::Pae, kPaePdpt, 0x40200000);
    EXPECT_EQ(t.error(), "0x40200000 is not mapped in address space 0x12345fe0 (PDE not present)");
    t = translate(ram, PagingMode::Pae, kPaePdpt, 0x40000000);
    EXPECT_EQ(t.error(), "0x40000000 is not mapped in address space 0x12345fe0 (PTE not present)");
}

TEST(TranslatePae, AddressesBeyondFourGigabytes) {
    FakeRam ram;
    const auto t = translate(ram, PagingMode::Pae, kPaePdpt, 0x100000000ull);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error(), "0x100000000 is not mapped in address space 0x12345fe0 (beyond 4 GiB)");
}

// ---- translate: 32-bit legacy ----

constexpr uint64_t kLegacyPd = 0x3000, kLegacyPt = 0x6000;

TEST(TranslateLegacy32, FourKilobytePage) {
    FakeRam ram;
    const uint64_t va = 0x0804A123;  // PDE 0x20, PTE 0x4A
    ram.put(kLegacyPd + 0x20 * 4, kLegacyPt | P | RW | US, 4);
    ram.put(kLegacyPt + 0x4A * 4, 0xABCDE000 | P | US, 4);
    const auto t = translate(ram, PagingMode::Legacy32, kLegacyPd | 0x18, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0xABCDE123u);
    EXPECT_EQ(t->page_size, 0x1000u);
    EXPECT_FALSE(t->writable);
    EXPECT_TRUE(t->user);
    EXPECT_FALSE(t->nx);
}

TEST(TranslateLegacy32, FourMegabytePageWithPse36Bits) {
    FakeRam ram;
    const uint64_t va = 0x80412345;  // PDE 0x201, 0x12345 into the page
    ram.put(kLegacyPd + 0x201 * 4, 0x00C00000 | (0x12 << 13) | PS | P | RW, 4);
    const auto t = translate(ram, PagingMode::Legacy32, kLegacyPd, va);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0x1200C12345ull);
    EXPECT_EQ(t->page_size, 0x400000u);
    EXPECT_TRUE(t->writable);
    EXPECT_FALSE(t->user);
}

TEST(TranslateLegacy32, NotPresentAtEachLevel) {
    FakeRam ram;
    ram.put(kLegacyPd + 1 * 4, kLegacyPt | P, 4);
    ram.page(kLegacyPt);
    auto t = translate(ram, PagingMode::Legacy32, kLegacyPd, 0x00000000);
    EXPECT_EQ(t.error(), "0x0 is not mapped in address space 0x3000 (PDE not present)");
    t = translate(ram, PagingMode::Legacy32, kLegacyPd, 0x00401000);
    EXPECT_EQ(t.error(), "0x401000 is not mapped in address space 0x3000 (PTE not present)");
    t = translate(ram, PagingMode::Legacy32, kLegacyPd, 0x100000000ull);
    EXPECT_EQ(t.error(), "0x100000000 is not mapped in address space 0x3000 (beyond 4 GiB)");
}

// ---- translate: paging off ----

TEST(TranslateNone, VirtualIsPhysical) {
    FakeRam ram;
    const auto t = translate(ram, PagingMode::None, 0x1234000, 0xFEE00ABC);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->paddr, 0xFEE00ABCu);
    EXPECT_EQ(t->page_size, 0x1000u);
    EXPECT_TRUE(t->writable);
    EXPECT_TRUE(t->user);
    EXPECT_FALSE(t->nx);
}

// ---- read_virtual / write_virtual ----

// 0x400000 -> 0x9000 and 0x401000 -> 0x7000: adjacent virtual pages on
// physical pages in the opposite order.
void two_pages(FakeRam& ram) {
    long4_tables(ram, 0x400000);
    set_entry(ram, kPt, 0x400000, 12, 0x9000 | P | RW | US);
    set_entry(ram, kPt, 0x401000, 12, 0x7000 | P | RW | US);
    ram.put_bytes(0x9FFE, {0xAA, 0xBB});
    ram.put_bytes(0x7000, {0xCC, 0xDD});
}

TEST(VirtualMemory, ReadCrossesIntoADifferentlyMappedPage) {
    FakeRam ram;
    two_pages(ram);
    std::vector<uint8_t> buf(4);
    const auto n = read_virtual(ram, PagingMode::Long4, kPml4, 0x400FFE, buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.error();
    EXPECT_EQ(n.value(), 4u);
    EXPECT_EQ(buf, (std::vector<uint8_t>{0xAA, 0xBB, 0xCC, 0xDD}));
}

TEST(VirtualMemory, WriteCrossesIntoADifferentlyMappedPage) {
    FakeRam ram;
    two_pages(ram);
    const uint8_t data[] = {0x11, 0x22, 0x33, 0x44, 0x55};
    const auto n = write_virtual(ram, PagingMode::Long4, kPml4, 0x400FFD, data, sizeof data);
    ASSERT_TRUE(n.ok()) << n.error();
    EXPECT_EQ(n.value(), 5u);
    EXPECT_EQ(ram.bytes(0x9FFD, 3), (std::vector<uint8_t>{0x11, 0x22, 0x33}));
    EXPECT_EQ(ram.bytes(0x7000, 2), (std::vector<uint8_t>{0x44, 0x55}));
}

TEST(VirtualMemory, ReadSpanningSeveralPagesAndALargePage) {
    FakeRam ram;
    // 0x1FF000 -> 0xA000 (4K), 0x200000.. -> 0x600000 (2M).
    set_entry(ram, kPml4, 0x1FF000, 39, kPdpt | P | RW);
    set_entry(ram, kPdpt, 0x1FF000, 30, kPd | P | RW);
    set_entry(ram, kPd, 0x1FF000, 21, kPt | P | RW);
    set_entry(ram, kPd, 0x200000, 21, 0x600000 | PS | P | RW);
    set_entry(ram, kPt, 0x1FF000, 12, 0xA000 | P | RW);
    ram.put(0xAFFF, 0x01, 1);
    ram.put(0x600000, 0x02, 1);
    ram.put(0x601000, 0x03, 1);
    std::vector<uint8_t> buf(0x1002);
    const auto n =
        read_virtual(ram, PagingMode::Long4, kPml4, 0x1FFFFF, buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.error();
    EXPECT_EQ(n.value(), 0x1002u);
    EXPECT_EQ(buf[0], 0x01);
    EXPECT_EQ(buf[1], 0x02);
    EXPECT_EQ(buf[0x1001], 0x03);
}

TEST(VirtualMemory, ReadIsAllOrNothing) {
    FakeRam ram;
    long4_tables(ram, 0x400000);
    set_entry(ram, kPt, 0x400000, 12, 0x9000 | P | RW | US);
    ram.put_bytes(0x9FFE, {0xAA, 0xBB});
    std::vector<uint8_t> buf(4, 0xEE);
    const auto n = read_virtual(ram, PagingMode::Long4, kPml4, 0x400FFE, buf.data(), buf.size());
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error(), "0x401000 is not mapped in address space 0x1000 (PTE not present)");
    EXPECT_EQ(buf, (std::vector<uint8_t>(4, 0xEE)));
}

TEST(VirtualMemory, WriteIsAllOrNothing) {
    FakeRam ram;
    long4_tables(ram, 0x400000);
    set_entry(ram, kPt, 0x400000, 12, 0x9000 | P | RW | US);
    ram.put_bytes(0x9FFE, {0xAA, 0xBB});
    const uint8_t data[] = {1, 2, 3, 4};
    const auto n = write_virtual(ram, PagingMode::Long4, kPml4, 0x400FFE, data, sizeof data);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error(), "0x401000 is not mapped in address space 0x1000 (PTE not present)");
    EXPECT_EQ(ram.writes, 0);
    EXPECT_EQ(ram.bytes(0x9FFE, 2), (std::vector<uint8_t>{0xAA, 0xBB}));
}

TEST(VirtualMemory, MappedButNotRam) {
    FakeRam ram;
    long4_tables(ram, 0x400000);
    set_entry(ram, kPt, 0x400000, 12, 0x7000000 | P | RW);
    uint8_t buf[4];
    const auto n = read_virtual(ram, PagingMode::Long4, kPml4, 0x400010, buf, sizeof buf);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error(), "0x400010 maps to physical 0x7000010..0x7000013, which is not RAM");
}

TEST(VirtualMemory, RangeWrappingPastTheTopIsAnError) {
    FakeRam ram;
    uint8_t buf[2];
    const auto n =
        read_virtual(ram, PagingMode::Long4, kPml4, 0xFFFFFFFFFFFFFFFFull, buf, sizeof buf);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error(),
              "the range 0xffffffffffffffff + 0x2 wraps past the top of the address space");
}

TEST(VirtualMemory, EmptyRangeNeedsNoMapping) {
    FakeRam ram;
    uint8_t buf[1] = {0x5A};
    const auto n = read_virtual(ram, PagingMode::Long4, kPml4, 0x400000, buf, 0);
    ASSERT_TRUE(n.ok()) << n.error();
    EXPECT_EQ(n.value(), 0u);
    EXPECT_EQ(buf[0], 0x5A);
}

TEST(VirtualMemory, LegacyModeCrossPageRead) {
    FakeRam ram;
    ram.put(kLegacyPd + 1 * 4, kLegacyPt | P | RW, 4);
    ram.put(kLegacyPt + 0 * 4, 0x9000 | P | RW, 4);
    ram.put(kLegacyPt + 1 * 4, 0x5000 | P | RW, 4);
    ram.put_bytes(0x9FFF, {0x10});
    ram.put_bytes(0x5000, {0x20});
    uint8_t buf[2] = {};
    const auto n = read_virtual(ram, PagingMode::Legacy32, kLegacyPd, 0x400FFF, buf, sizeof buf);
    ASSERT_TRUE(n.ok()) << n.error();
    EXPECT_EQ(buf[0], 0x10);
    EXPECT_EQ(buf[1], 0x20);
}

}  // namespace
