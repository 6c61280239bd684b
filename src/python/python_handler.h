// A callback whose handler is Python: the adapter built by pyrebox.callbacks
// for the script's function, called with the event's raw values.
#pragma once

#include <pybind11/pybind11.h>

#include "engine/callback_registry.h"

namespace pyrebox::python {

class PythonHandler final : public CallbackHandler {
public:
    // Thread: any, with the GIL held.
    explicit PythonHandler(pybind11::object adapter) : adapter_(std::move(adapter)) {}
    // Thread: any; takes the GIL to drop the adapter.
    ~PythonHandler() override;

    // Thread: the event's vCPU thread. Calls the adapter with the event's
    // raw arguments: for each type, the Event members its fields read, in
    // the order of event_kinds.raw_arguments (python/pyrebox/event_kinds.py).
    // The adapter reports the script's exceptions itself; anything escaping
    // it is printed here and never reaches QEMU.
    void deliver(const Event& event) override;

private:
    pybind11::object adapter_;
};

}  // namespace pyrebox::python
