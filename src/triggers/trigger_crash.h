// What the user learns when a native trigger crashes. A trigger runs inside
// QEMU's process: a fault in it ends QEMU, and PyREBox does not try to
// recover (the machine state is no longer trustworthy). It says which
// trigger, which signal and which event, then lets the signal do what it
// did before (QEMU dies from it; core dumps keep working).
//
// Cost on the call path: TriggerCallScope stores a pointer in a
// thread-local before the call and the previous one after it.
#pragma once

#include "base/event.h"
#include "triggers/trigger_library.h"

namespace pyrebox::triggers {

// The trigger call a thread is in (valid while the call runs).
struct TriggerCall {
    const TriggerLibrary* library;
    const Event* event;
};

struct TriggerThreadState {
    const TriggerCall* call = nullptr;
    bool alt_stack_ready = false;  // this thread has a signal stack
};

// initial-exec: read on every trigger call; the default model for a
// dlopen'ed plugin calls __tls_get_addr each time.
extern thread_local TriggerThreadState g_trigger_thread
    __attribute__((tls_model("initial-exec")));

// Gives the calling thread an alternate signal stack (so a trigger that
// overflows its stack is still reported), unless it has one.
void prepare_thread_for_crash_report();

// Marks `call` as the calling thread's current trigger call for the scope.
class TriggerCallScope {
public:
    explicit TriggerCallScope(const TriggerCall& call) : previous_(g_trigger_thread.call) {
        if (__builtin_expect(!g_trigger_thread.alt_stack_ready, 0)) {
            prepare_thread_for_crash_report();
        }
        g_trigger_thread.call = &call;
    }
    ~TriggerCallScope() { g_trigger_thread.call = previous_; }
    TriggerCallScope(const TriggerCallScope&) = delete;
    TriggerCallScope& operator=(const TriggerCallScope&) = delete;

private:
    const TriggerCall* previous_;
};

// Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT
// (once; later calls only change the fd). When the signal arrives on a
// thread inside a trigger call, the handler writes one line on `fd`:
//   [pyrebox] fatal: trigger 'NAME' (PATH) crashed with SIGSEGV while
//   handling BLOCK_BEGIN_CB (vCPU 0); QEMU stops
// then puts back the handler that was there before and lets the signal
// take its course again (a fault re-executes and faults again; a sent
// signal is raised again). Outside trigger calls the signal goes to the
// previous handler as if this one were not there. Async-signal-safe: only
// write(2), sigaction(2) and raise(3) run in the handler.
void install_crash_reporter(int fd);

// The text of that line for `call` and `signal` (without the newline), as
// the handler writes it; at most `size` - 1 bytes, NUL-terminated; returns
// the length. Async-signal-safe.
int format_crash_report(const TriggerCall& call, int signal, char* out, int size);

}  // namespace pyrebox::triggers
