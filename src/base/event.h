// One event delivered to callbacks. Plain values only: handlers copy what
// they keep. Which members a type fills, and what they mean to scripts and
// triggers, is the event-kind table (python/pyrebox/event_kinds.py): each
// field there names the member it is read from. In short: `pc` is the
// instruction (the block's last one for BLOCK_END and OPCODE_RANGE),
// `next_pc` where execution went, `vaddr` the access (LOADMODULE: the base),
// `data` the value stored (KEYSTROKE: the keycode).
#pragma once

#include <cstdint>

#include "base/callback_types.h"

namespace pyrebox {

struct TbInfo {
    uint64_t pc = 0;
    uint64_t size = 0;     // bytes
    uint64_t icount = 0;   // instructions
    uint64_t last_pc = 0;  // address of the last instruction
};

struct Event {
    CallbackType type = CallbackType::BlockBegin;
    int cpu_index = 0;
    uint64_t pc = 0;
    uint64_t next_pc = 0;
    TbInfo tb;
    uint64_t vaddr = 0;
    uint64_t paddr = 0;  // ~0 when unknown (I/O)
    uint64_t size = 0;
    uint64_t data = 0;       // value written (low 64 bits)
    uint64_t data_high = 0;  // high 64 bits of a 128-bit store
    uint16_t opcode = 0;
    uint64_t old_pgd = 0;
    uint64_t new_pgd = 0;
    uint64_t pgd = 0;  // the address space the event happened in
    uint64_t pid = 0;
    uint64_t tid = 0;  // SYSCALL / SYSCALL_RET: the thread (pid: its process)
    // Valid while the event is delivered (nullptr when the type has none).
    const char* name = nullptr;
    const char* fullname = nullptr;
    // NIC_SEND / NIC_REC: the frame, valid only while the event is delivered.
    const uint8_t* buffer = nullptr;
    // SYSCALL / SYSCALL_RET: the call's number and six argument registers
    // (in its entry path's order), the entry path (SyscallPath), and on
    // return the value the kernel returned (a negative errno on failure)
    // and whether this is the child's return of a fork/clone.
    uint64_t number = 0;
    uint64_t args[6] = {};
    uint64_t retval = 0;
    uint8_t syscall_path = 0;
    bool child = false;
};

}  // namespace pyrebox
