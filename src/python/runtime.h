// The embedded Python interpreter: start-up, the guarded call, shutdown.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "base/expected.h"

namespace pyrebox {
struct Session;
}

namespace pyrebox::python {

struct RuntimeConfig {
    std::string venv;        // virtual environment (holds pyvenv.cfg)
    std::string pythonpath;  // folder with the pyrebox package
    std::string conf;        // pyrebox.conf, or empty
    std::string target;      // "x86_64" or "i386"
    int qemu_plugin_api = 0;  // the running QEMU's plugin API version
};

// Starts the interpreter inside the venv, then runs pyrebox.runtime.boot,
// which reads the configuration and loads the start-up scripts. A bad
// configuration is an error (nothing has run yet); a script that fails is
// reported by boot and does not stop the start. Leaves the GIL released.
// The `_pyrebox` module works on `session` (which outlives the interpreter).
// Thread: QEMU's main thread, during plugin install.
Expected<bool> start(const RuntimeConfig& config, Session& session);

// Runs `fn` with the GIL held. A Python exception it raises is printed with
// its traceback, prefixed by `what`, and never propagates: returns false.
// Any thread. Callable only after start() succeeded.
bool guarded(std::string_view what, const std::function<void()>& fn);

// Lets scripts clean up (pyrebox.runtime.shutdown). Thread: QEMU's main
// thread at exit. The interpreter is not finalised: vCPU threads may still
// hold thread states.
void shutdown();

bool started();

}  // namespace pyrebox::python
