#include "python/python_handler.h"

#include "python/gil.h"
#include "python/runtime.h"

namespace py = pybind11;

namespace pyrebox::python {

namespace {

// Conversions of Event members the generated delivery uses.
py::str text(const char* s) { return py::str(s ? s : ""); }

py::bytes frame(const Event& e) {
    return py::bytes(reinterpret_cast<const char*>(e.buffer), e.size);
}

// The value stored: data, with data_high above it for a 128-bit store.
py::object stored(const Event& e) {
    if (e.size <= 8) {
        return py::int_(e.data);
    }
    return py::int_(e.data_high).attr("__lshift__")(64).attr("__or__")(e.data);
}

// A system call's six argument registers.
py::tuple syscall_args(const Event& e) {
    return py::make_tuple(e.args[0], e.args[1], e.args[2], e.args[3], e.args[4], e.args[5]);
}

}  // namespace

PythonHandler::~PythonHandler() {
    GilScope gil;
    adapter_ = py::object();
}

void PythonHandler::deliver(const Event& e) {
    guarded("internal error delivering an event", [&] {
        const py::handle f = adapter_;
        switch (e.type) {
#include "generated/event_delivery.inc"
            default:
                break;
        }
    });
}

}  // namespace pyrebox::python
