// The process-wide PyREBox state shared by the QEMU boundary and the
// bindings: the callback registry, the monitored set, the engine and the
// machine accessor. Created at plugin install; lives until the process ends.
#pragma once

#include <memory>

#include "core/callback_registry.h"
#include "core/engine.h"
#include "core/machine.h"
#include "core/monitored_set.h"

namespace pyrebox {

struct Session {
    CallbackRegistry registry;
    MonitoredSet monitored;
    std::unique_ptr<Engine> engine;  // set at install
    Machine* machine = nullptr;      // set at install; owned by the boundary
    bool is_64bit = true;            // qemu-system-x86_64 vs qemu-system-i386
};

Session& session();

}  // namespace pyrebox
