// Calls a trigger with the event as PyREBox's callback_params_t. The layout
// of callback_params_t depends on the target's word size, so there is one
// implementation per target (trigger_call_64.cpp, trigger_call_32.cpp).
#pragma once

#include "base/event.h"

namespace pyrebox::triggers {

// What the opaque cpu / tb handles of callback_params_t point to; valid
// during the trigger call only.
struct TriggerCpu {
    int cpu_index;
    uint64_t pc;
};

int call_trigger_64(void* trigger, unsigned handle, const Event& event, TriggerCpu* cpu,
                    const TbInfo* tb);
int call_trigger_32(void* trigger, unsigned handle, const Event& event, TriggerCpu* cpu,
                    const TbInfo* tb);

}  // namespace pyrebox::triggers
