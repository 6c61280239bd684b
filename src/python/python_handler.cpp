#include "python/python_handler.h"

#include <type_traits>

#include "python/gil.h"
#include "python/guest_text.h"
#include "python/runtime.h"

namespace py = pybind11;

namespace pyrebox::python {

namespace {

// Conversions of Event members the generated delivery uses.
// Guest names (process, file): bytes, surrogateescape-decoded (guest_text.h).
py::str text(const char* s) { return guest_str(s ? s : ""); }

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

// Calls the adapter with the event's values as positional arguments, with
// no argument tuple (vectorcall): the call made for every delivered event.
struct AdapterCall {
    py::handle adapter;

    template <typename T>
    static py::object value(T&& v) {
        if constexpr (std::is_base_of_v<py::handle, std::decay_t<T>>) {
            return py::reinterpret_borrow<py::object>(v);
        } else {
            return py::cast(std::forward<T>(v));
        }
    }

    template <typename... Args>
    void operator()(Args&&... args) const {
        PyObject* result = nullptr;
        if constexpr (sizeof...(Args) == 0) {
            result = PyObject_CallNoArgs(adapter.ptr());
        } else {
            const py::object values[] = {value(std::forward<Args>(args))...};
            PyObject* argv[sizeof...(Args)];
            for (size_t i = 0; i < sizeof...(Args); ++i) {
                argv[i] = values[i].ptr();
            }
            result = PyObject_Vectorcall(adapter.ptr(), argv, sizeof...(Args), nullptr);
        }
        if (result == nullptr) {
            throw py::error_already_set();
        }
        Py_DECREF(result);
    }
};

}  // namespace

PythonHandler::~PythonHandler() {
    GilScope gil;
    adapter_ = py::object();
}

void PythonHandler::deliver(const Event& e) {
    guarded("internal error delivering an event", [&] {
        const AdapterCall f{adapter_};
        switch (e.type) {
#include "generated/event_delivery.inc"
            default:
                break;
        }
    });
}

}  // namespace pyrebox::python
