// Translation-time instrumentation: decides per translated block what to
// instrument from the registry's Plan, and turns QEMU's execution callbacks
// into Engine calls. The only code that registers QEMU execution callbacks.
#pragma once

#include "qemu/plugin_api.h"

namespace pyrebox {
struct Session;
}

namespace pyrebox::qemu {

// Creates the engine in `session` (which the callbacks keep using) and
// registers the translation, vCPU-init and flush callbacks. Thread: QEMU's
// main thread, at install, before Python starts.
void install_instrumentation(Session& session, qemu_plugin_id_t id, int max_vcpus,
                             bool is_64bit);

// Asks QEMU to retranslate all code (the plan changed). Any thread; takes
// effect when the vCPU next leaves generated code.
void request_retranslation();

// QEMU is exiting: later callback changes need no retranslation.
void stop_instrumentation();

}  // namespace pyrebox::qemu
