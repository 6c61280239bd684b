// The QEMU implementation of pyrebox::Machine, and the per-thread callback
// context that lets a PC write made inside a callback redirect execution.
#pragma once

#include "core/machine.h"

namespace pyrebox::qemu {

class QemuMachine;

// Set while a vCPU thread runs a PyREBox callback: which vCPU, and whether
// the callback changed the program counter (the boundary then leaves the
// current translation block once the callback has fully returned).
struct CallbackContext {
    int vcpu = -1;
    bool pc_written = false;
    // Return address into the generated code that called the callback: lets
    // QEMU bring EIP and the flags state up to date on demand.
    uintptr_t host_pc = 0;
    bool state_synced = false;
};

// Inside a callback on `cpu`'s own thread: makes env's EIP and flags state
// exact for the current instruction (QEMU keeps them lazily within a block).
// Elsewhere: nothing to do.
void sync_lazy_state(int cpu);
CallbackContext& callback_context();  // thread-local

Machine& machine();

}  // namespace pyrebox::qemu
