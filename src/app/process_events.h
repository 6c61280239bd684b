// CREATEPROC / REMOVEPROC / LOADMODULE / REMOVEMODULE delivery: turns the
// Linux process tracker on when some callback of those types exists, places
// its kernel hooks as address-specific callbacks, and dispatches what the
// tracker reports to the registry.
//
// Turning on needs the kernel located, which needs the guest booted far
// enough; so it is attempted at CR3 loads (the QEMU boundary reports each),
// backing off while it fails, and once on it stays on (the hooks cost
// nothing until the guest creates a process or maps a file).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "engine/callback_registry.h"
#include "vmi/linux/process_tracker.h"

namespace pyrebox {

struct Session;

class ProcessEvents {
public:
    // Works on `session`, which holds it.
    explicit ProcessEvents(Session& session) : session_(session) {}

    // The registry's plan changed (any thread).
    void on_plan(const Plan& plan);
    // vCPU `vcpu` is loading CR3 (its vCPU thread). Cheap unless turning on
    // is pending.
    void on_cr3_load(int vcpu) {
        if (pending_.load(std::memory_order_relaxed)) {
            try_activate();
        }
    }
    bool active() const { return active_.load(); }
    // The symbol table just became available (built from guest memory):
    // the next CR3 load attempts to turn on, whatever the backoff says.
    void retry_now();
    // The machine's state may have been replaced (the VM resumes, after a
    // loadvm for instance): the tracker forgets what it knew and reads the
    // processes and modules again. Called while the vCPUs are stopped.
    void resync();

    // A hook placed by this class was reached on `vcpu` (vCPU thread).
    void on_hook(vmi::linux_guest::ProcessTracker::Hook hook, int vcpu);

private:
    void try_activate();
    void warn_once(const std::string& message);
    // A hooked kernel function's first six arguments, at its first
    // instruction: x86-64's argument registers, or i386's regparm(3)
    // registers and stack. False (warned once) when they do not read.
    bool amd64_args(int vcpu, uint64_t (&args)[6]);
    bool i386_args(int vcpu, uint64_t (&args)[6]);

    Session& session_;
    std::atomic<bool> pending_{false};
    std::atomic<bool> active_{false};
    std::mutex lock_;  // activation
    std::unique_ptr<vmi::linux_guest::ProcessTracker> tracker_;
    uint64_t attempts_ = 0, next_attempt_ = 0;
    std::mutex warned_lock_;
    std::set<std::string> warned_;
};

}  // namespace pyrebox
