#include <stdint.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "base/event.h"
#include "triggers/trigger_call.h"

namespace pyrebox::triggers::target64 {
#define TARGET_X86_64
#include "callbacks.h"
#undef TARGET_X86_64
#include "triggers/trigger_call_impl.inc"
}  // namespace pyrebox::triggers::target64

namespace pyrebox::triggers {
int call_trigger_64(void* trigger, unsigned handle, const Event& event, TriggerCpu* cpu,
                    const TbInfo* tb) {
    return target64::call(trigger, handle, event, cpu, tb);
}
}  // namespace pyrebox::triggers
