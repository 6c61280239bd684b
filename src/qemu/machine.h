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
};
CallbackContext& callback_context();  // thread-local

Machine& machine();

}  // namespace pyrebox::qemu
