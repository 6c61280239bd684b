// The guest's Linux kernel as the bindings and process events reach it: the
// session's symbol table, located in guest memory on the first call that
// succeeds (the page tables it is found through exist only once the guest
// has booted far enough). Any thread; calls are serialised.
#pragma once

#include "base/expected.h"
#include "vmi/linux/linux_kernel.h"

namespace pyrebox {
struct Session;
}

namespace pyrebox {

// True once the symbol table has finished loading (or failed to): the
// functions below then answer without waiting.
bool linux_symbols_settled(Session& s);

// The located kernel. Never waits: an error says why there is none yet
// (introspection off, symbols still loading, the guest not in long mode,
// the kernel not found). A banner of another kernel is reported once on the
// console and is final. A location is taken only when the kernel's own data
// agree with it (see verify_location in vmi/linux/kernel_locator.h); until
// then, during the kernel's start-up, the error says the page tables and
// data do not agree yet, and the next call tries again.
Expected<vmi::linux_guest::LinuxKernel*> located_linux_kernel(Session& s);

// The process and thread the kernel says vCPU `vcpu` runs (its per-CPU
// current task); false when introspection cannot tell. Any thread.
bool linux_current_thread(Session& s, int vcpu, uint64_t& pid, uint64_t& tid);

// Where the running thread's i386 fast system calls return (its vDSO's
// landing pad); false when introspection cannot tell. Any thread.
bool linux_compat_landing_pad(Session& s, int vcpu, uint64_t& pc);

// A located kernel whose structures cannot be read: checks its location
// again (verify_location) and, when that no longer holds, locates the
// kernel anew and replaces the location (saying so on the console). True
// when the location was replaced. Any thread.
bool recheck_linux_location(Session& s);

}  // namespace pyrebox
