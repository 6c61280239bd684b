#include "python/gil.h"

namespace pyrebox::python {

namespace {
PyInterpreterState* g_interp = nullptr;
}

void set_main_interpreter(PyInterpreterState* interp) { g_interp = interp; }

GilScope::GilScope() {
    if (PyGILState_Check()) {
        return;  // Nested: this thread already holds the GIL.
    }
    PyThreadState* tstate = PyGILState_GetThisThreadState();
    if (tstate == nullptr) {
        // Registers itself as this thread's GILState thread state. The counter
        // is our permanent reference: pybind11's nested gil_scoped_acquire
        // deletes a thread state whose counter drops to zero.
        tstate = PyThreadState_New(g_interp);
        tstate->gilstate_counter = 1;
    }
    PyEval_RestoreThread(tstate);
    acquired_ = true;
}

GilScope::~GilScope() {
    if (acquired_) {
        PyEval_SaveThread();
    }
}

}  // namespace pyrebox::python
