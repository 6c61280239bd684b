#include "vmi/linux/process_tracker.h"

#include <gtest/gtest.h>

#include "fake_ram.h"
#include "linux_fixture.h"

namespace {

using pyrebox::testing::FakeRam;
using pyrebox::vmi::linux_guest::ProcessTracker;
using pyrebox::vmi::linux_guest::TrackerEvent;
using namespace pyrebox::testing::linux_fixture;
using Hook = ProcessTracker::Hook;
using Kind = TrackerEvent::Kind;

// Address spaces (mm_struct) with empty VMA trees, their pgd fields holding
// direct-map addresses.
constexpr uint64_t kInitMm = 0x5000, kChildMm = 0x6000, kExecMm = 0x7000;
constexpr uint64_t kName = 0x9000;  // where __set_task_comm's buf points

struct TrackerTest : ::testing::Test {
    FakeRam ram;
    LinuxKernel k = kernel();
    ProcessTracker tracker{k};

    void SetUp() override {
        ram.put(kInitMm + 80, kPageOffset + 0x7a000);
        ram.put(kChildMm + 80, kPageOffset + 0x7b000);
        ram.put(kExecMm + 80, kPageOffset + 0x7c000);
        put_tasks(ram, {{0x2000, 1, kInitTask, kInitMm, "init"},
                        {0x3000, 2, kInitTask, 0, "kthreadd"}});
        ASSERT_TRUE(tracker.seed(ram, false).ok());
    }

    // A task_struct that is not (yet) on the task list.
    void put_task(uint64_t addr, int pid, int tgid, uint64_t mm, const std::string& comm) {
        ram.put(addr + 32, static_cast<uint32_t>(pid), 4);
        ram.put(addr + 36, static_cast<uint32_t>(tgid), 4);
        ram.put(addr + 48, mm);
        ram.put_string(addr + 64, comm);
    }

    // A vm_area_struct of `mm` mapping [start, end) of the struct file `file`.
    void put_vma(uint64_t addr, uint64_t start, uint64_t end, uint64_t mm, uint64_t file) {
        ram.put(addr + 0, start);
        ram.put(addr + 8, end);
        ram.put(addr + 16, mm);
        ram.put(addr + 112, file);
    }

    std::vector<TrackerEvent> hook(Hook h, uint64_t a0, uint64_t a1 = 0, uint64_t a2 = 0) {
        const uint64_t args[6] = {a0, a1, a2, 0, 0, 0};
        auto events = tracker.on_hook(h, args, ram, false);
        EXPECT_TRUE(events.ok()) << events.error();
        return events.events;
    }
};

void expect_event(const TrackerEvent& e, Kind kind, uint64_t pid, uint64_t pgd,
                  const std::string& name) {
    EXPECT_EQ(e.kind, kind);
    EXPECT_EQ(e.pid, pid);
    EXPECT_EQ(e.pgd, pgd);
    EXPECT_EQ(e.name, name);
}

TEST_F(TrackerTest, SeedKnowsUserProcessesOnly) {
    EXPECT_EQ(tracker.process_count(), 1u);  // init; kthreadd has no mm
}

TEST_F(TrackerTest, ForkThenExecThenReap) {
    put_task(0x4000, 77, 77, kChildMm, "init");
    auto created = hook(Hook::NewTask, 0x4000);
    ASSERT_EQ(created.size(), 1u);
    expect_event(created[0], Kind::CreateProc, 77, 0x7b000, "init");

    // exec: a new mm, then the new name.
    ram.put(0x4000 + 48, kExecMm);
    ram.put_string(kName, "static_loop");
    auto exec = hook(Hook::SetComm, 0x4000, kName, 1);
    ASSERT_EQ(exec.size(), 2u);
    expect_event(exec[0], Kind::RemoveProc, 77, 0x7b000, "init");
    expect_event(exec[1], Kind::CreateProc, 77, 0x7c000, "static_loop");

    // At release the mm is gone; the tracked pgd and name are reported.
    ram.put(0x4000 + 48, 0);
    auto reaped = hook(Hook::ReleaseTask, 0x4000);
    ASSERT_EQ(reaped.size(), 1u);
    expect_event(reaped[0], Kind::RemoveProc, 77, 0x7c000, "static_loop");
    EXPECT_TRUE(hook(Hook::ReleaseTask, 0x4000).empty());  // once
    EXPECT_EQ(tracker.process_count(), 1u);
}

TEST_F(TrackerTest, ThreadsAndKernelThreadsFireNothing) {
    put_task(0x4000, 78, 1, kInitMm, "init");  // a thread of init
    put_task(0x4800, 79, 79, 0, "kworker/0:1");
    EXPECT_TRUE(hook(Hook::NewTask, 0x4000).empty());
    EXPECT_TRUE(hook(Hook::NewTask, 0x4800).empty());
    EXPECT_TRUE(hook(Hook::ReleaseTask, 0x4000).empty());
    EXPECT_EQ(tracker.process_count(), 1u);
}

TEST_F(TrackerTest, AKernelThreadThatExecsBecomesAProcess) {
    put_task(0x4000, 80, 80, kExecMm, "kworker/u2:0");
    ram.put_string(kName, "modprobe");
    auto exec = hook(Hook::SetComm, 0x4000, kName, 1);
    ASSERT_EQ(exec.size(), 1u);
    expect_event(exec[0], Kind::CreateProc, 80, 0x7c000, "modprobe");
}

TEST_F(TrackerTest, ARenameIsNoEventButNamesTheRemoval) {
    ram.put_string(kName, "sh");
    EXPECT_TRUE(hook(Hook::SetComm, 0x2000, kName, 0).empty());
    auto reaped = hook(Hook::ReleaseTask, 0x2000);
    ASSERT_EQ(reaped.size(), 1u);
    expect_event(reaped[0], Kind::RemoveProc, 1, 0x7a000, "sh");
}

TEST_F(TrackerTest, AnExecNameIsCutToTheCommLength) {
    put_task(0x4000, 81, 81, kExecMm, "init");
    ram.put_string(kName, "a_program_with_a_long_name");
    auto exec = hook(Hook::SetComm, 0x4000, kName, 1);
    ASSERT_EQ(exec.size(), 1u);
    EXPECT_EQ(exec[0].name, "a_program_with_");  // TASK_COMM_LEN - 1
}

TEST_F(TrackerTest, AVforkChildSharesItsParentsAddressSpace) {
    put_task(0x4000, 82, 82, kInitMm, "init");
    auto created = hook(Hook::NewTask, 0x4000);
    ASSERT_EQ(created.size(), 1u);
    expect_event(created[0], Kind::CreateProc, 82, 0x7a000, "init");
    // The child's exit leaves the parent's address space tracked.
    ram.put(0x4000 + 48, 0);
    ASSERT_EQ(hook(Hook::ReleaseTask, 0x4000).size(), 1u);
    ram.put_string(kName, "init2");
    EXPECT_TRUE(hook(Hook::SetComm, 0x2000, kName, 0).empty());
    EXPECT_EQ(hook(Hook::ReleaseTask, 0x2000)[0].name, "init2");
}

// A zombie's mm_struct is freed at its exit; the next fork may get the same
// address. The new child is a new address space: its mappings are its own.
TEST_F(TrackerTest, AReusedMmStructIsANewAddressSpace) {
    // struct file for /lib.so: f_path.dentry -> a dentry under a root.
    constexpr uint64_t kFile = 0xb000, kDentry = 0xb100, kRoot = 0xb400, kVma = 0xc000;
    ram.put(kRoot + 24, kRoot);
    ram.put(kFile + 16 + 8, kDentry);
    ram.put(kDentry + 24, kRoot);
    ram.put(kDentry + 32 + 8, kDentry + 0x80);
    ram.put_string(kDentry + 0x80, "lib.so");
    put_vma(kVma, 0x7f0000000000, 0x7f0000001000, kChildMm, kFile);

    put_task(0x4000, 77, 77, kChildMm, "init");
    ASSERT_EQ(hook(Hook::NewTask, 0x4000).size(), 1u);
    auto mapped = hook(Hook::MapFile, kVma);
    ASSERT_EQ(mapped.size(), 1u);
    EXPECT_EQ(mapped[0].pid, 77u);
    // 77 exits (a zombie until reaped); its mm goes, and 78 gets its address.
    ram.put(0x4000 + 48, 0);
    EXPECT_TRUE(hook(Hook::ExitMmap, kChildMm).empty());
    put_task(0x4800, 78, 78, kChildMm, "init");
    auto created = hook(Hook::NewTask, 0x4800);
    ASSERT_EQ(created.size(), 1u);
    expect_event(created[0], Kind::CreateProc, 78, 0x7b000, "init");
    mapped = hook(Hook::MapFile, kVma);
    ASSERT_EQ(mapped.size(), 1u);
    expect_event(mapped[0], Kind::LoadModule, 78, 0x7b000, "lib.so");
    // Reaping the zombie names it and leaves 78's address space alone.
    auto reaped = hook(Hook::ReleaseTask, 0x4000);
    ASSERT_EQ(reaped.size(), 1u);
    expect_event(reaped[0], Kind::RemoveProc, 77, 0x7b000, "init");
    EXPECT_TRUE(hook(Hook::MapFile, kVma).empty());  // known to 78 already
    EXPECT_EQ(tracker.process_count(), 2u);
}

// A file whose path does not read is still loaded, under a name no path
// has; the problem is reported beside the event.
TEST_F(TrackerTest, AFileWhosePathDoesNotReadIsStillLoaded) {
    constexpr uint64_t kFile = 0xb000, kVma = 0xc000;
    ram.put(kFile + 16 + 8, 0xdead0000);  // f_path.dentry: unmapped
    put_vma(kVma, 0x7f0000000000, 0x7f0000002000, kChildMm, kFile);
    put_task(0x4000, 77, 77, kChildMm, "init");
    ASSERT_EQ(hook(Hook::NewTask, 0x4000).size(), 1u);
    const uint64_t args[6] = {kVma, 0, 0, 0, 0, 0};
    auto mapped = tracker.on_hook(Hook::MapFile, args, ram, false);
    EXPECT_FALSE(mapped.ok());
    EXPECT_NE(mapped.error().find("the path of the file mapped at 0x7f0000000000: "),
              std::string::npos)
        << mapped.error();
    ASSERT_EQ(mapped.events.size(), 1u);
    expect_event(mapped.events[0], Kind::LoadModule, 77, 0x7b000, "[unreadable 0xb000]");
    EXPECT_EQ(mapped.events[0].fullname, "[unreadable 0xb000]");
    EXPECT_EQ(mapped.events[0].size, 0x2000u);
}

TEST_F(TrackerTest, ExitMmapOfAnUntrackedAddressSpaceChangesNothing) {
    EXPECT_TRUE(hook(Hook::ExitMmap, 0x12345000).empty());
    EXPECT_TRUE(hook(Hook::ExitMmap, 0).empty());
    EXPECT_EQ(tracker.process_count(), 1u);
}

TEST_F(TrackerTest, UnreadableTaskIsAnErrorAndChangesNothing) {
    const uint64_t args[6] = {0xdead0000, 0, 0, 0, 0, 0};
    auto events = tracker.on_hook(Hook::NewTask, args, ram, false);
    ASSERT_FALSE(events.ok());
    EXPECT_NE(events.error().find("a new task: task_struct at 0xdead0000"), std::string::npos)
        << events.error();
    EXPECT_EQ(tracker.process_count(), 1u);
}

TEST(ProcessTrackerHooks, NamesMissingFunctionsAndPicksTheUnmapFunction) {
    LinuxKernel bare = kernel();
    ProcessTracker none(bare);
    auto missing = none.hooks();
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error(),
              "the kernel's symbol table lacks functions that process events hook: "
              "wake_up_new_task, __set_task_comm, release_task, perf_event_mmap, "
              "do_vmi_munmap/do_mas_munmap/__do_munmap/do_munmap");

    std::string text = isf();
    const std::string end = R"("_end": {"address": 131072})";
    text.replace(text.find(end), end.size(),
                 end + R"(, "wake_up_new_task": {"address": 1}, "__set_task_comm": {"address": 2},
                    "release_task": {"address": 3}, "perf_event_mmap": {"address": 4},
                    "do_munmap": {"address": 5}, "do_mas_munmap": {"address": 6},
                    "exit_mmap": {"address": 7})");
    LinuxKernel full = kernel(text);
    ProcessTracker tracker(full);
    auto sites = tracker.hooks();
    ASSERT_TRUE(sites.ok()) << sites.error();
    ASSERT_EQ(sites->size(), 6u);  // no module hooks: do_init_module/free_module absent
    EXPECT_EQ((*sites)[4].function, "do_mas_munmap");  // 6.1's, not the older wrapper
    EXPECT_EQ((*sites)[4].addr, 6u);
    EXPECT_EQ((*sites)[5].function, "exit_mmap");
    EXPECT_EQ((*sites)[5].hook, ProcessTracker::Hook::ExitMmap);
}

TEST(ProcessTrackerHooks, BeforeSixOneUnmapsAreHookedAtDoubleUnderscoreDoMunmap) {
    // 5.x: munmap(2) calls __do_munmap(mm, start, len, uf, downgrade)
    // directly; do_munmap is only a wrapper for other callers.
    std::string text = isf();
    const std::string end = R"("_end": {"address": 131072})";
    text.replace(text.find(end), end.size(),
                 end + R"(, "wake_up_new_task": {"address": 1}, "__set_task_comm": {"address": 2},
                    "release_task": {"address": 3}, "perf_event_mmap": {"address": 4},
                    "do_munmap": {"address": 5}, "__do_munmap": {"address": 7})");
    LinuxKernel k = kernel(text);
    ProcessTracker tracker(k);
    auto sites = tracker.hooks();
    ASSERT_TRUE(sites.ok()) << sites.error();
    ASSERT_EQ(sites->size(), 5u);
    EXPECT_EQ((*sites)[4].function, "__do_munmap");
    EXPECT_EQ((*sites)[4].addr, 7u);
    // Its arguments: mm in rdi, start in rsi, len in rdx.
    FakeRam ram;
    put_tasks(ram, {});
    ASSERT_TRUE(tracker.seed(ram, false).ok());
    const uint64_t args[6] = {0x5000, 0x400000, 0x1000, 0, 0, 0};
    auto events = tracker.on_hook(ProcessTracker::Hook::Unmap, args, ram, false);
    ASSERT_TRUE(events.ok()) << events.error();  // an untracked mm: nothing to do
    EXPECT_TRUE(events.events.empty());
}

}  // namespace
