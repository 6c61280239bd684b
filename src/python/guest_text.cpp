#include "python/guest_text.h"

namespace py = pybind11;

namespace pyrebox::python {

py::str guest_str(const std::string& bytes) {
    PyObject* text = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()),
                                          "surrogateescape");
    if (text == nullptr) {
        throw py::error_already_set();
    }
    return py::reinterpret_steal<py::str>(text);
}

std::string guest_bytes(const py::handle& text) {
    if (PyBytes_Check(text.ptr())) {
        return std::string(PyBytes_AS_STRING(text.ptr()),
                           static_cast<size_t>(PyBytes_GET_SIZE(text.ptr())));
    }
    if (!PyUnicode_Check(text.ptr())) {
        throw py::type_error("a name must be str or bytes, not " +
                             std::string(Py_TYPE(text.ptr())->tp_name));
    }
    PyObject* encoded = PyUnicode_AsEncodedString(text.ptr(), "utf-8", "surrogateescape");
    if (encoded == nullptr) {
        throw py::error_already_set();
    }
    const auto bytes = py::reinterpret_steal<py::bytes>(encoded);
    return std::string(PyBytes_AS_STRING(bytes.ptr()),
                       static_cast<size_t>(PyBytes_GET_SIZE(bytes.ptr())));
}

}  // namespace pyrebox::python
