#include <stdint.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "base/event.h"
#include "triggers/trigger_call.h"

namespace pyrebox::triggers::target32 {
#define TARGET_I386
#include "callbacks.h"
#undef TARGET_I386
#include "triggers/trigger_call_impl.inc"
}  // namespace pyrebox::triggers::target32

namespace pyrebox::triggers {
int call_trigger_32(void* trigger, unsigned handle, const Event& event, TriggerCpu* cpu,
                    const TbInfo* tb) {
    return target32::call(trigger, handle, event, cpu, tb);
}
}  // namespace pyrebox::triggers
