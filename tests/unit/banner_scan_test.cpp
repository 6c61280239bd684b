#include "vmi/linux/banner_scan.h"

#include <gtest/gtest.h>

#include "fake_ram.h"

namespace pyrebox::vmi::linux_guest {
namespace {

using testing::FakeRam;

const std::string kBanner =
    "Linux version 6.1.0-9-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
    "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.27-1 "
    "(2023-05-08)\n";

// Pages [first, first + n) touched (zero), so reads there succeed.
void touch(FakeRam& ram, uint64_t first, uint64_t n) {
    for (uint64_t p = first; p < first + n; ++p) {
        ram.put(p * 4096, 0, 1);
    }
}

TEST(BannerScan, FindsTheBannerWithItsNulAndNewline) {
    FakeRam ram;
    touch(ram, 0x1000, 4);
    ram.put_string(0x1000123, kBanner);
    auto found = find_linux_banner(ram, {{0, 0x2000000}});
    ASSERT_TRUE(found);
    EXPECT_EQ(found->text, kBanner);
    EXPECT_EQ(found->paddr, 0x1000123u);
}

TEST(BannerScan, SkipsLogCopiesWithoutTheBannerEnding) {
    FakeRam ram;
    touch(ram, 0x100, 2);
    touch(ram, 0x3000, 2);
    // A log record: the text without "\n\0" after it.
    const std::string record = kBanner.substr(0, kBanner.size() - 1);
    ram.put_string(0x100000, record + "\x01\x02");
    // Printable up to a non-printable byte.
    ram.put_string(0x100400, "Linux version 6.1\x7f rest\n");
    ram.put_string(0x3000010, kBanner);
    auto found = find_linux_banner(ram, {{0, 0x4000000}});
    ASSERT_TRUE(found);
    EXPECT_EQ(found->paddr, 0x3000010u);
}

TEST(BannerScan, SeesABannerAcrossAChunkBoundary) {
    FakeRam ram;
    touch(ram, 0x1ff, 3);  // the last page of the first 2 MiB and the next two
    const uint64_t at = 0x200000 - 40;
    ram.put_string(at, kBanner);
    auto found = find_linux_banner(ram, {{0, 0x400000}});
    ASSERT_TRUE(found);
    EXPECT_EQ(found->paddr, at);
    EXPECT_EQ(found->text, kBanner);
}

TEST(BannerScan, HonoursTheRamRangesAndLengthCap) {
    FakeRam ram;
    touch(ram, 0x10, 1);
    ram.put_string(0x10000, kBanner);
    EXPECT_FALSE(find_linux_banner(ram, {{0x20000, 0x100000}}));
    EXPECT_TRUE(find_linux_banner(ram, {{0x10000, 0x1000}}));
    // Too long to be a banner.
    FakeRam long_ram;
    touch(long_ram, 0x10, 2);
    long_ram.put_string(0x10000, "Linux version " + std::string(kMaxBannerLength, 'x') + "\n");
    EXPECT_FALSE(find_linux_banner(long_ram, {{0, 0x100000}}));
}

TEST(BannerScan, NothingReadableFindsNothing) {
    FakeRam ram;
    EXPECT_FALSE(find_linux_banner(ram, {{0, 0x1000000}}));
}

}  // namespace
}  // namespace pyrebox::vmi::linux_guest
