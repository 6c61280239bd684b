#include "engine/syscall_tracker.h"

#include <gtest/gtest.h>

namespace pyrebox {
namespace {

SyscallCall call(uint64_t pgd, uint64_t sp, uint64_t number, uint64_t pc = 0x401000) {
    SyscallCall c;
    c.path = SyscallPath::Syscall;
    c.pgd = pgd;
    c.sp = sp;
    c.entry_pc = pc;
    c.return_pc = pc + 2;
    c.number = number;
    return c;
}

TEST(SyscallTracker, ReturnsPairWithTheirThreadAcrossInterleaving) {
    SyscallTracker t;
    t.enter(call(0x1000, 0x7ff0, 0));   // thread A: read
    t.enter(call(0x1000, 0x6ff0, 39));  // thread B of the same process: getpid
    t.enter(call(0x2000, 0x7ff0, 1));   // another process, same stack address: write
    bool child = true;
    auto b = t.resume(0x1000, 0x6ff0, 0x401002, 42, child);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->number, 39u);
    EXPECT_FALSE(child);
    auto other = t.resume(0x2000, 0x7ff0, 0x401002, 5, child);
    ASSERT_TRUE(other);
    EXPECT_EQ(other->number, 1u);
    auto a = t.resume(0x1000, 0x7ff0, 0x401002, 5, child);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->number, 0u);
    EXPECT_FALSE(t.resume(0x1000, 0x7ff0, 0x401002, 5, child));  // each returns once
    EXPECT_EQ(t.pending(), 0u);
}

TEST(SyscallTracker, AnInstructionReachedOtherwiseIsNoReturn) {
    SyscallTracker t;
    t.enter(call(0x1000, 0x7ff0, 0));
    bool child = false;
    EXPECT_FALSE(t.resume(0x1000, 0x7fe8, 0x401002, 0, child));  // another stack depth
    EXPECT_FALSE(t.resume(0x1000, 0x7ff0, 0x401010, 0, child));  // another pc
    EXPECT_EQ(t.pending(), 1u);
}

TEST(SyscallTracker, ANewEntryReplacesACallThatNeverReturned) {
    SyscallTracker t;
    t.enter(call(0x1000, 0x7ff0, 59));  // execve that succeeded: never returns there
    t.enter(call(0x1000, 0x7ff0, 60));
    bool child = false;
    auto r = t.resume(0x1000, 0x7ff0, 0x401002, 0, child);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->number, 60u);
    EXPECT_EQ(t.pending(), 0u);
}

TEST(SyscallTracker, ForkReturnsInTheParentAndOnceInTheChild) {
    SyscallTracker t;
    SyscallCall fork = call(0x1000, 0x7ff0, 57);
    fork.has_child = true;
    fork.child_sp = 0x7ff0;
    fork.child_same_pgd = false;
    t.enter(fork);
    bool child = false;
    auto in_child = t.resume(0x3000, 0x7ff0, 0x401002, 0, child);
    ASSERT_TRUE(in_child);
    EXPECT_TRUE(child);
    EXPECT_EQ(in_child->pgd, 0x3000u);
    EXPECT_EQ(in_child->number, 57u);
    auto in_parent = t.resume(0x1000, 0x7ff0, 0x401002, 1234, child);
    ASSERT_TRUE(in_parent);
    EXPECT_FALSE(child);
    EXPECT_FALSE(t.resume(0x4000, 0x7ff0, 0x401002, 0, child));
    EXPECT_EQ(t.pending(), 0u);
}

TEST(SyscallTracker, AThreadStartsOnTheStackCloneNamed) {
    SyscallTracker t;
    SyscallCall clone = call(0x1000, 0x7ff0, 56);
    clone.has_child = true;
    clone.child_sp = 0x5000;
    clone.child_same_pgd = true;
    t.enter(clone);
    bool child = false;
    EXPECT_FALSE(t.resume(0x2000, 0x5000, 0x401002, 0, child));  // not in another process
    auto thread = t.resume(0x1000, 0x5000, 0x401002, 0, child);
    ASSERT_TRUE(thread);
    EXPECT_TRUE(child);
    ASSERT_TRUE(t.resume(0x1000, 0x7ff0, 0x401002, 77, child));
    EXPECT_FALSE(child);
}

TEST(SyscallTracker, VforkChildReturnsFirstOnTheParentsStack) {
    SyscallTracker t;
    SyscallCall vfork = call(0x1000, 0x7ff0, 58);
    vfork.has_child = true;
    vfork.child_sp = 0x7ff0;
    vfork.child_same_pgd = true;
    t.enter(vfork);
    bool child = false;
    auto in_child = t.resume(0x1000, 0x7ff0, 0x401002, 0, child);
    ASSERT_TRUE(in_child);
    EXPECT_TRUE(child);
    auto in_parent = t.resume(0x1000, 0x7ff0, 0x401002, 99, child);
    ASSERT_TRUE(in_parent);
    EXPECT_FALSE(child);
    EXPECT_EQ(t.pending(), 0u);
}

TEST(SyscallTracker, AFailedForkLeavesNoChildToWaitFor) {
    SyscallTracker t;
    SyscallCall fork = call(0x1000, 0x7ff0, 57);
    fork.has_child = true;
    fork.child_sp = 0x7ff0;
    t.enter(fork);
    bool child = false;
    ASSERT_TRUE(t.resume(0x1000, 0x7ff0, 0x401002, static_cast<uint64_t>(-11), child));
    EXPECT_EQ(t.pending(), 0u);
    EXPECT_FALSE(t.resume(0x3000, 0x7ff0, 0x401002, 0, child));
}

TEST(SyscallTracker, PendingCallsAreCappedOldestFirst) {
    SyscallTracker t;
    const size_t n = SyscallTracker::kMaxPending + 10;
    for (size_t i = 0; i < n; ++i) {
        t.enter(call(0x1000, 0x10000 + 16 * i, i));
    }
    EXPECT_EQ(t.pending(), SyscallTracker::kMaxPending);
    EXPECT_EQ(t.dropped(), 10u);
    bool child = false;
    EXPECT_FALSE(t.resume(0x1000, 0x10000, 0x401002, 0, child));  // the oldest went first
    auto newest = t.resume(0x1000, 0x10000 + 16 * (n - 1), 0x401002, 0, child);
    ASSERT_TRUE(newest);
    EXPECT_EQ(newest->number, n - 1);
}

}  // namespace
}  // namespace pyrebox
