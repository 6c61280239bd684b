// The `_pyrebox` extension module (module.cpp): its functions work on one
// session, handed over by the runtime before the interpreter starts.
#pragma once

namespace pyrebox {
struct Session;
}

namespace pyrebox::python {

// Thread: QEMU's main thread, during plugin install, before start().
void bind_module_session(Session& session);

}  // namespace pyrebox::python
