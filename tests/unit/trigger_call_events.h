// Events with a distinct known value in every field a trigger's parameters
// carry, shared by the 64-bit and 32-bit trigger call tests.
#pragma once

#include "base/event.h"

namespace pyrebox::testing {

inline Event trigger_call_event(CallbackType type) {
    Event e;
    e.type = type;
    e.cpu_index = 3;
    e.pc = 0x401000;
    e.next_pc = 0x401005;
    e.vaddr = 0x7ffd12345678;
    e.paddr = 0x1234000;
    e.size = 8;
    e.opcode = 0x1A2;
    e.old_pgd = 0x1000;
    e.new_pgd = 0x2000;
    e.data = 0x1c;
    return e;
}

}  // namespace pyrebox::testing
