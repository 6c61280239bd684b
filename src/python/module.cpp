// The `_pyrebox` extension module: what pure Python reaches of the C++ side.
// Thin by design: each function maps a name onto the core; policy lives in
// the `pyrebox` package.
#include <pybind11/embed.h>

#include <string>

#include "core/console.h"

namespace py = pybind11;

PYBIND11_EMBEDDED_MODULE(_pyrebox, m) {
    m.doc() = "PyREBox native side (embedded in the QEMU plugin)";
    m.def(
        "write",
        [](const std::string& prefix, const std::string& text) {
            py::gil_scoped_release unlocked;
            pyrebox::console().write_lines(prefix, text);
        },
        py::arg("prefix"), py::arg("text"),
        "Writes text to the PyREBox console, each line starting with prefix.");
}
