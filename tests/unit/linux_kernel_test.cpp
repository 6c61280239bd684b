#include "vmi/linux/linux_kernel.h"

#include <gtest/gtest.h>

#include "fake_ram.h"
#include "linux_fixture.h"

#include <array>
#include <map>
#include <string>

namespace {

using pyrebox::vmi::PagingMode;
using pyrebox::vmi::PhysicalMemory;
using pyrebox::vmi::SymbolTable;
using pyrebox::vmi::linux_guest::KernelLocation;
using pyrebox::vmi::linux_guest::LinuxKernel;

using pyrebox::testing::FakeRam;
using namespace pyrebox::testing::linux_fixture;

TEST(LinuxKernel, ListsThreadGroupLeadersWithParentsAndPgds) {
    FakeRam ram;
    // Two user processes: mm pgd fields hold direct-map addresses.
    ram.put(0x5000 + 80, kPageOffset + 0x7a000);
    ram.put(0x6000 + 80, kPageOffset + 0x7b000);
    put_tasks(ram, {{0x2000, 1, kInitTask, 0x5000, "init"},
                    {0x3000, 2, kInitTask, 0, "kthreadd"},
                    {0x4000, 77, 0x2000, 0x6000, "static_loop"}});
    auto procs = kernel().processes(ram, /*kpti=*/false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    ASSERT_EQ(procs->size(), 3u);
    EXPECT_EQ((*procs)[0].pid, 1u);
    EXPECT_EQ((*procs)[0].name, "init");
    EXPECT_EQ((*procs)[0].ppid, 0u);
    EXPECT_EQ((*procs)[0].pgd, 0x7a000u);
    EXPECT_EQ((*procs)[0].kaddr, 0x2000u);
    EXPECT_EQ((*procs)[1].name, "kthreadd");
    EXPECT_EQ((*procs)[1].pgd, 0u);
    EXPECT_EQ((*procs)[2].pid, 77u);
    EXPECT_EQ((*procs)[2].ppid, 1u);
    EXPECT_EQ((*procs)[2].pgd, 0x7b000u);
    // With KPTI the user half's bit is not part of the identity.
    ram.put(0x6000 + 80, kPageOffset + 0x7d000);
    EXPECT_EQ((*kernel().processes(ram, true))[2].pgd, 0x7c000u);
}

// b's next pointer back to a instead of to init_task: the walk stops at the
// cycle and takes the rest backwards from the head; nothing is lost.
TEST(LinuxKernel, ACycleInTheTaskListIsWalkedAround) {
    FakeRam ram;
    put_tasks(ram, {{0x2000, 1, kInitTask, 0, "a"}, {0x3000, 2, kInitTask, 0, "b"},
                    {0x4000, 3, kInitTask, 0, "c"}});
    ram.put(0x3000 + 16, 0x2000 + 16);  // b -> a
    auto procs = kernel().processes(ram, false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    std::vector<std::string> names;
    for (const auto& p : *procs) {
        names.push_back(p.name + (p.partial.empty() ? "" : "!"));
    }
    EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
}

// A forged entry whose memory does not read: listed as partial (only its
// address known, the reason given); the others are whole.
TEST(LinuxKernel, AnUnreadableTaskIsAPartialEntryNotAFailedList) {
    FakeRam ram;
    put_tasks(ram, {{0x2000, 1, kInitTask, 0, "a"}, {0x3000, 2, kInitTask, 0, "b"}});
    ram.put(0x2000 + 16, 0x90000 + 16);  // a -> memory that is not there
    auto procs = kernel().processes(ram, false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    ASSERT_EQ(procs->size(), 3u);
    EXPECT_EQ((*procs)[0].name, "a");
    EXPECT_EQ((*procs)[1].kaddr, 0x90000u);
    EXPECT_NE((*procs)[1].partial.find("task_struct at 0x90000: cannot read task_struct.tgid"),
              std::string::npos)
        << (*procs)[1].partial;
    EXPECT_EQ((*procs)[2].name, "b");  // found backwards from the head
    EXPECT_TRUE((*procs)[2].partial.empty());

    // A garbage parent and mm: the entry keeps what reads.
    ram.put(0x2000 + 16, 0x3000 + 16);
    ram.put(0x3000 + 40, 0x91000);  // real_parent
    ram.put(0x3000 + 48, 0x92000);  // mm
    procs = kernel().processes(ram, false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    ASSERT_EQ(procs->size(), 2u);
    const auto& b = (*procs)[1];
    EXPECT_EQ(b.name, "b");
    EXPECT_EQ(b.pid, 2u);
    EXPECT_EQ(b.ppid, 0u);
    EXPECT_EQ(b.pgd, 0u);
    EXPECT_NE(b.partial.find("the parent's task_struct.tgid"), std::string::npos) << b.partial;
}

// Both directions broken: the entries read are listed, and an entry with
// only `partial` says some may be missing.
TEST(LinuxKernel, ABreakBothWaysIsSaid) {
    FakeRam ram;
    put_tasks(ram, {{0x2000, 1, kInitTask, 0, "a"}, {0x3000, 2, kInitTask, 0, "b"},
                    {0x4000, 3, kInitTask, 0, "c"}});
    ram.put(0x2000 + 16, 0);                // a's next: NULL
    ram.put(0x4000 + 24, 0);                // c's prev: NULL
    auto procs = kernel().processes(ram, false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    ASSERT_EQ(procs->size(), 3u);
    EXPECT_EQ((*procs)[0].name, "a");
    EXPECT_NE((*procs)[1].partial.find("is broken going forward (a NULL next pointer after 1 "
                                       "entries) and backward (a NULL prev pointer)"),
              std::string::npos)
        << (*procs)[1].partial;
    EXPECT_EQ((*procs)[2].name, "c");
}

TEST(LinuxKernel, AMissingMemberIsNamed) {
    FakeRam ram;
    put_tasks(ram, {{0x2000, 1, kInitTask, 0, "a"}});
    auto no_tasks = kernel(isf("")).processes(ram, false);
    ASSERT_FALSE(no_tasks.ok());
    EXPECT_NE(no_tasks.error().find("no member 'tasks' in struct task_struct"),
              std::string::npos)
        << no_tasks.error();
}

TEST(LinuxKernel, NotLocatedYet) {
    auto table = SymbolTable::parse(isf(), "test.isf");
    ASSERT_TRUE(table.ok());
    FakeRam ram;
    auto procs = LinuxKernel(*table).processes(ram, false);
    ASSERT_FALSE(procs.ok());
    EXPECT_NE(procs.error().find("not been located"), std::string::npos);
}

TEST(LinuxKernel, DentryPathGoesUpToTheRoot) {
    FakeRam ram;
    // "/" <- "usr" <- "lib" <- "libc.so.6"; names in a string area.
    const std::vector<std::pair<uint64_t, std::string>> chain = {
        {0x8000, ""}, {0x8100, "usr"}, {0x8200, "lib"}, {0x8300, "libc.so.6"}};
    for (size_t i = 0; i < chain.size(); ++i) {
        const auto [d, name] = chain[i];
        ram.put(d + 24, i == 0 ? d : chain[i - 1].first);
        ram.put(d + 32 + 8, 0x9000 + 64 * i);
        ram.put_string(0x9000 + 64 * i, name);
    }
    auto path = kernel().dentry_path(ram, 0x8300, 0);
    ASSERT_TRUE(path.ok()) << path.error();
    EXPECT_EQ(*path, "/usr/lib/libc.so.6");
    EXPECT_EQ(*kernel().dentry_path(ram, 0x8000, 0), "/");
}

// A chain of 3,000 directories named "dd" (9,000 bytes of path): the last
// components that fit in PATH_MAX, after "/...".
TEST(LinuxKernel, APathDeeperThanPathMaxIsItsLastComponents) {
    FakeRam ram;
    constexpr uint64_t kRoot = 0x100000, kStride = 0x40;
    constexpr int kDepth = 3000;
    ram.put(kRoot + 24, kRoot);
    for (int i = 1; i <= kDepth; ++i) {
        const uint64_t d = kRoot + kStride * i;
        ram.put(d + 24, d - kStride);
        ram.put(d + 32 + 8, 0x400000 + 8 * i);
        ram.put_string(0x400000 + 8 * i, i == kDepth ? "lib.so" : "dd");
    }
    auto path = kernel().dentry_path(ram, kRoot + kStride * kDepth, 0);
    ASSERT_TRUE(path.ok()) << path.error();
    EXPECT_EQ(path->rfind("/.../dd/", 0), 0u) << path->substr(0, 40);
    EXPECT_EQ(path->substr(path->size() - 10), "/dd/lib.so");
    EXPECT_LE(path->size(), LinuxKernel::kMaxPathBytes);
    EXPECT_GE(path->size(), LinuxKernel::kMaxPathBytes - 8);
}

// Guest memory that counts the reads made of it.
struct CountingRam : FakeRam {
    size_t reads = 0;
    bool read(uint64_t paddr, void* buf, size_t len) override {
        ++reads;
        return FakeRam::read(paddr, buf, len);
    }
};

// Files of one directory at the end of a long chain: with a walk cache, the
// chain is read once, and every path is the one read without it.
TEST(LinuxKernel, AWalkCacheReadsSharedAncestorsOnce) {
    CountingRam ram;
    constexpr uint64_t kRoot = 0x100000, kStride = 0x40, kFiles = 0x200000;
    constexpr int kDepth = 1000, kCount = 50;
    ram.put(kRoot + 24, kRoot);
    for (int i = 1; i <= kDepth; ++i) {
        const uint64_t d = kRoot + kStride * i;
        ram.put(d + 24, d - kStride);
        ram.put(d + 32 + 8, 0x400000 + 8 * i);
        ram.put_string(0x400000 + 8 * i, "dd");
    }
    const uint64_t dir = kRoot + kStride * kDepth;
    for (int f = 0; f < kCount; ++f) {
        const uint64_t d = kFiles + kStride * f;
        ram.put(d + 24, dir);
        ram.put(d + 32 + 8, 0x500000 + 16 * f);
        ram.put_string(0x500000 + 16 * f, "f" + std::to_string(f));
    }
    const LinuxKernel k = kernel();
    std::vector<std::string> uncached;
    for (int f = 0; f < kCount; ++f) {
        auto path = k.dentry_path(ram, kFiles + kStride * f, 0);
        ASSERT_TRUE(path.ok()) << path.error();
        uncached.push_back(*path);
    }
    const size_t uncached_reads = ram.reads;
    ram.reads = 0;
    pyrebox::vmi::linux_guest::DentryWalkCache steps;
    for (int f = 0; f < kCount; ++f) {
        auto path = k.dentry_path(ram, kFiles + kStride * f, 0, &steps);
        ASSERT_TRUE(path.ok()) << path.error();
        EXPECT_EQ(*path, uncached[f]);
    }
    EXPECT_EQ(uncached[7].size(), 3u * kDepth + 3);
    EXPECT_EQ(uncached[7].substr(uncached[7].size() - 6), "/dd/f7");
    // Each file's own dentry, plus the chain once: a fiftieth of the reads.
    EXPECT_LT(ram.reads * 40, uncached_reads) << ram.reads << " vs " << uncached_reads;
}

// d_parent pointers in a loop (a corrupt or hostile structure): an error
// naming the dentry, after one lap.
TEST(LinuxKernel, ADentryCycleIsAnError) {
    FakeRam ram;
    for (uint64_t i = 0; i < 3; ++i) {
        const uint64_t d = 0x8000 + 0x100 * i;
        ram.put(d + 24, 0x8000 + 0x100 * ((i + 1) % 3));
        ram.put(d + 32 + 8, 0x9000 + 64 * i);
        ram.put_string(0x9000 + 64 * i, "x");
    }
    auto path = kernel().dentry_path(ram, 0x8000, 0);
    ASSERT_FALSE(path.ok());
    EXPECT_NE(path.error().find("has a cycle"), std::string::npos) << path.error();
}

}  // namespace

namespace {

TEST(SupportedKernel, FiveFourThroughSevenThree) {
    using pyrebox::vmi::linux_guest::check_supported_kernel;
    for (const char* banner :
         {"Linux version 5.4.0 (x@y)", "Linux version 5.10.0-32-amd64 (debian-kernel@...)",
          "Linux version 6.0.19 (x@y)", "Linux version 6.1.0-56-amd64 (debian-kernel@...)",
          "Linux version 6.12.9 (x@y)", "Linux version 7.0.0 (x@y)",
          "Linux version 7.3.1 (x@y)"}) {
        EXPECT_TRUE(check_supported_kernel(banner).ok()) << banner;
    }
    auto old = check_supported_kernel("Linux version 4.19.0-27-amd64 (debian-kernel@...)");
    ASSERT_FALSE(old.ok());
    EXPECT_EQ(old.error(),
              "Linux 4.19 is not supported: introspection reads the kernel's structures (task "
              "list, mappings, modules) and hooks its functions with the layouts known for "
              "x86-64 Linux 5.4 through 7.3; older kernels were not checked (supported: x86-64 "
              "Linux 5.4 through 7.3)");
    EXPECT_FALSE(check_supported_kernel("Linux version 5.3.18 (x@y)").ok());
    auto future = check_supported_kernel("Linux version 7.4.0 (x@y)");
    ASSERT_FALSE(future.ok());
    EXPECT_NE(future.error().find("Linux 7.4 is not supported"), std::string::npos);
    EXPECT_NE(future.error().find("newer kernels may have changed them (supported: x86-64 Linux "
                                  "5.4 through 7.3)"),
              std::string::npos)
        << future.error();
    EXPECT_FALSE(check_supported_kernel("Linux version 8.0.0 (x@y)").ok());
    auto garbage = check_supported_kernel("FreeBSD 14.0");
    ASSERT_FALSE(garbage.ok());
    EXPECT_NE(garbage.error().find("does not name a Linux version"), std::string::npos);
}

}  // namespace
