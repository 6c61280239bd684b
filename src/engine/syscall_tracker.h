// Pairs system-call entries with their returns, per thread.
//
// A system call enters the kernel at a `syscall` / `int 0x80` / `sysenter`
// instruction and, when it returns, user code resumes at the instruction
// after it in the same thread, with the same user stack pointer (the
// kernel saves and restores it). A thread is therefore identified by its
// address space and its stack pointer at that moment: threads of one
// process have stacks of their own, so two pending calls never share
// (pgd, sp, return pc) unless one of them will never return (the thread
// exited, or execve replaced the program), which a newer entry at the same
// key then replaces.
//
// fork and clone return twice: in the parent (its own key) and in the
// child, which starts at the same return pc either in a new address space
// with the parent's stack pointer (fork, vfork) or in the same address
// space on the stack the call named (clone with CLONE_VM). An entry can
// carry that second key (child_sp, any other pgd or the same one); the
// child's return is matched by it once, with no entry of its own.
//
// The guest is hostile: the number of pending calls is capped (kMaxPending);
// beyond it the oldest is dropped and counted, never an unbounded table.
// Pure core: no QEMU, no Python; the engine calls it on vCPU threads and
// serialises the calls (one lock).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "base/x86_insn.h"

namespace pyrebox {

struct SyscallCall {
    SyscallPath path = SyscallPath::None;
    uint64_t pgd = 0;
    uint64_t sp = 0;         // user stack pointer at the entry
    uint64_t entry_pc = 0;   // the system-call instruction
    uint64_t return_pc = 0;  // the instruction after it
    uint64_t number = 0;
    uint64_t args[6] = {};
    uint64_t serial = 0;     // order of entry (set by the tracker)
    // fork/clone: where the child returns (its stack pointer), and whether
    // in the same address space (CLONE_VM) or another one.
    bool has_child = false;
    uint64_t child_sp = 0;
    bool child_same_pgd = false;
};

class SyscallTracker {
public:
    static constexpr size_t kMaxPending = 65536;

    // A call entered; a pending call at the same key (a thread whose call
    // never returned) is replaced.
    void enter(const SyscallCall& call);

    // User code resumes at `pc` (a return site) in `pgd` with stack pointer
    // `sp` and return value `retval`: the call this returns from, removed;
    // nullopt when none pends there (the instruction was reached some other
    // way). `child` is set when it is a fork/clone child's return: matched
    // by the child key, or a vfork-like child (same address space, same
    // stack) that returns 0 first, while the parent's call stays pending.
    // A parent's failed fork/clone (retval < 0) drops the child's key.
    std::optional<SyscallCall> resume(uint64_t pgd, uint64_t sp, uint64_t pc, uint64_t retval,
                                      bool& child);

    // Forget everything (the machine state was replaced, e.g. loadvm).
    void clear();

    size_t pending() const;
    uint64_t dropped() const;

private:
    using Key = std::tuple<uint64_t, uint64_t, uint64_t>;  // pgd, sp, return pc
    using ChildKey = std::tuple<uint64_t, uint64_t>;       // sp, return pc
    struct ChildWait { uint64_t parent_pgd; bool same_pgd; SyscallCall call; };

    void drop_oldest_locked();
    void forget_child_locked(uint64_t serial);

    mutable std::mutex lock_;
    std::map<Key, SyscallCall> pending_;
    std::multimap<ChildKey, ChildWait> children_;
    std::deque<std::pair<uint64_t, Key>> order_;  // (serial, key), oldest first
    uint64_t serial_ = 0;
    uint64_t dropped_ = 0;
};

}  // namespace pyrebox
