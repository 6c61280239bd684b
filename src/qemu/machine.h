// The QEMU implementation of pyrebox::Machine, and the per-thread callback
// context that lets a PC write made inside a callback redirect execution.
#pragma once

#include <cstdint>
#include <functional>

#include "base/machine.h"

namespace pyrebox::qemu {

class QemuMachine;

// EIP and EFLAGS of the instruction a callback runs at, computed once per
// callback without changing the vCPU (see with_exact_state).
struct ExactState {
    bool valid = false;
    uint64_t pc = 0;
    uint64_t eflags = 0;
};

// Set while a vCPU thread runs a PyREBox callback: which vCPU, and whether
// the callback changed the program counter (the boundary then leaves the
// current translation block once the callback has fully returned).
struct CallbackContext {
    int vcpu = -1;
    bool pc_written = false;
    // Return address into the generated code that called the callback: lets
    // QEMU compute EIP and the flags state of the current instruction.
    uintptr_t host_pc = 0;
    // env was made exact for a write (materialize_state): reads are direct,
    // and the block is left when the callback returns.
    bool materialized = false;
    // A write made env exact for good: leave the block when the callback
    // returns and resume at the same instruction (not used with pc_written).
    bool leave_block = false;
    // Memory callbacks run between an instruction's effects: no resuming
    // at that instruction from there.
    bool mid_instruction = false;
    ExactState exact;
    // The callback running (instruction and kind), and the one a
    // replay ends at (vcpu -1: no replay; see instrumentation).
    struct Site {
        int vcpu = -1;
        uint64_t pc = 0;
        uint8_t kind = 0;
    } current, replay;
};

// Inside a callback on `cpu`'s own thread: runs `fn` with env's EIP and
// flags state exact for the current instruction, then puts back exactly what
// the translation block's code expects, so reading never changes the guest.
// Elsewhere (VM stopped, another thread), or once materialized: just `fn`.
void with_exact_state(int cpu, const std::function<void()>& fn);

// The exact EIP and EFLAGS for a callback on `cpu` (cached for the rest of
// the callback), or nullptr when plain reads are exact.
const ExactState* exact_state(int cpu);

// Makes env exact for the current instruction for good, before a write the
// rest of the block could not honour (EIP, EFLAGS, segments, control
// registers); the boundary leaves the block when the callback returns.
// Nothing to do when not inside a callback on `cpu`, or already done.
void materialize_state(int cpu);

CallbackContext& callback_context();  // thread-local

struct CPUState;
// The CPUX86State inside a vCPU object (located from the live register
// values once; every vCPU object has the same layout), or nullptr when not
// recognised.
void* cpu_env(CPUState* state);

Machine& machine();

}  // namespace pyrebox::qemu
