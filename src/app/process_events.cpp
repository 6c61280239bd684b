#include "app/process_events.h"

#include "base/console.h"
#include "app/linux_introspection.h"
#include "app/session.h"

namespace pyrebox {

namespace {

using vmi::linux_guest::ProcessTracker;
using vmi::linux_guest::TrackerEvent;

class HookHandler : public CallbackHandler {
public:
    HookHandler(ProcessEvents& owner, ProcessTracker::Hook hook) : owner_(owner), hook_(hook) {}
    void deliver(const Event& event) override { owner_.on_hook(hook_, event.cpu_index); }

private:
    ProcessEvents& owner_;
    ProcessTracker::Hook hook_;
};

// System V AMD64 integer argument registers, in order.
constexpr const char* kArgRegisters[6] = {"rdi", "rsi", "rdx", "rcx", "r8", "r9"};
// An i386 kernel is built with -mregparm=3: the first three arguments in
// EAX, EDX, ECX, the rest on the stack above the return address. The names
// of a 32-bit QEMU target first, then the 64-bit target's (the low half).
constexpr const char* kRegparmRegisters[3][2] = {{"eax", "rax"}, {"edx", "rdx"}, {"ecx", "rcx"}};
constexpr int kStackArgs = 3;

// Retry turning on at CR3 loads 1, 2, 4, ... apart, at most this many apart.
constexpr uint64_t kMaxAttemptGap = 1024;
// CR3 loads after which the kernel has long finished starting (the default
// guest's kernel is located by the 8th, and a boot that runs one command
// makes about 20000): a kernel still not located then is reported.
constexpr uint64_t kSettledCr3Loads = 4096;

CallbackType type_of(TrackerEvent::Kind kind) {
    switch (kind) {
        case TrackerEvent::Kind::CreateProc: return CallbackType::CreateProc;
        case TrackerEvent::Kind::RemoveProc: return CallbackType::RemoveProc;
        case TrackerEvent::Kind::LoadModule: return CallbackType::LoadModule;
        case TrackerEvent::Kind::RemoveModule: return CallbackType::RemoveModule;
    }
    return CallbackType::CreateProc;
}

}  // namespace

void ProcessEvents::on_plan(const Plan& plan) {
    if (plan.process_events && !active_.load()) {
        pending_.store(true);
    }
}

void ProcessEvents::warn_once(const std::string& message) {
    std::lock_guard<std::mutex> guard(warned_lock_);
    if (warned_.size() < 64 && warned_.insert(message).second) {
        console().write_lines("[pyrebox] warning: ", message);
    }
}

void ProcessEvents::retry_now() {
    std::lock_guard<std::mutex> guard(lock_);
    next_attempt_ = attempts_;
}

void ProcessEvents::try_activate() {
    std::unique_lock<std::mutex> guard(lock_, std::try_to_lock);
    if (!guard.owns_lock() || active_.load()) {
        return;  // another vCPU is at it, or it is done
    }
    if (++attempts_ < next_attempt_) {
        return;
    }
    next_attempt_ = attempts_ + std::min<uint64_t>(attempts_, kMaxAttemptGap);
    Session& s = session_;
    if (!linux_symbols_settled(s)) {
        return;
    }
    if (!s.linux_kernel) {
        if (!s.table_from_memory.armed()) {
            pending_.store(false);  // off for good: the registration said so
        }
        return;  // else: the table is built from memory once the kernel runs
    }
    auto kernel = located_linux_kernel(s);
    if (!kernel) {
        if (!s.linux_locate_error.empty()) {
            pending_.store(false);
        } else if (attempts_ >= kSettledCr3Loads) {
            // Long after start-up (user space runs by then): say why once;
            // locating goes on.
            warn_once("process and module events are waiting for the kernel to be located: " +
                      kernel.error());
        }
        return;
    }
    auto tracker = std::make_unique<ProcessTracker>(**kernel);
    auto sites = tracker->hooks();
    if (!sites) {
        pending_.store(false);
        warn_once("process and module events are off: " + sites.error());
        return;
    }
    if (auto seeded = tracker->seed(s.machine->physical_memory(), s.engine->kpti()); !seeded) {
        // A location that stopped holding is replaced (the next attempt
        // uses it); otherwise the processes are read again later.
        if (!recheck_linux_location(s)) {
            warn_once("process and module tracking could not read the current processes: " +
                      seeded.error() + " (retrying)");
        }
        return;
    }
    tracker_ = std::move(tracker);
    active_.store(true);
    pending_.store(false);
    for (const auto& site : *sites) {
        CallbackSpec spec;
        spec.type = CallbackType::InsnBegin;
        spec.addr = site.addr;
        auto id = s.registry.add(spec, std::make_shared<HookHandler>(*this, site.hook));
        if (!id) {
            warn_once("cannot hook " + site.function + ": " + id.error());
        }
    }
}

void ProcessEvents::resync() {
    std::lock_guard<std::mutex> guard(lock_);
    if (!tracker_) {
        return;
    }
    Session& s = session_;
    if (auto seeded = tracker_->seed(s.machine->physical_memory(), s.engine->kpti()); !seeded) {
        warn_once("process and module tracking could not re-read the processes: " +
                  seeded.error());
    }
}

bool ProcessEvents::amd64_args(int vcpu, uint64_t (&args)[6]) {
    for (int i = 0; i < 6; ++i) {
        auto value = session_.machine->read_register(vcpu, kArgRegisters[i]);
        if (!value) {
            warn_once("process events: cannot read " + std::string(kArgRegisters[i]) + ": " +
                      value.error());
            return false;
        }
        args[i] = *value;
    }
    return true;
}

bool ProcessEvents::i386_args(int vcpu, uint64_t (&args)[6]) {
    Session& s = session_;
    for (int i = 0; i < 3; ++i) {
        auto value = s.machine->read_register(vcpu, kRegparmRegisters[i][0]);
        if (!value) {
            value = s.machine->read_register(vcpu, kRegparmRegisters[i][1]);
        }
        if (!value) {
            warn_once("process events: cannot read " + std::string(kRegparmRegisters[i][0]) +
                      ": " + value.error());
            return false;
        }
        args[i] = *value & 0xffffffffu;
    }
    auto sp = s.machine->read_register(vcpu, "esp");
    if (!sp) {
        sp = s.machine->read_register(vcpu, "rsp");
    }
    if (!sp) {
        warn_once("process events: cannot read esp: " + sp.error());
        return false;
    }
    // At the function's first instruction [esp] is the return address.
    uint32_t stack[kStackArgs] = {};
    const auto& kernel = *s.linux_kernel;
    auto read = vmi::read_virtual(s.machine->physical_memory(), kernel.mode(),
                                  kernel.location().pgd_paddr, (*sp & 0xffffffffu) + 4, stack,
                                  sizeof stack);
    if (!read) {
        warn_once("process events: cannot read the stack arguments: " + read.error());
        return false;
    }
    for (int i = 0; i < kStackArgs; ++i) {
        args[3 + i] = stack[i];
    }
    return true;
}

void ProcessEvents::on_hook(ProcessTracker::Hook hook, int vcpu) {
    if (!tracker_) {
        return;
    }
    Session& s = session_;
    uint64_t args[6] = {};
    if (!(s.linux_kernel && s.linux_kernel->pointer_bytes() == 4 ? i386_args(vcpu, args)
                                                                  : amd64_args(vcpu, args))) {
        return;
    }
    auto result = tracker_->on_hook(hook, args, s.machine->physical_memory(), s.engine->kpti());
    if (!result.ok()) {
        warn_once("process events: " + result.error());  // what did read is still delivered
    }
    for (const auto& te : result.events) {
        Event e;
        e.type = type_of(te.kind);
        e.cpu_index = vcpu;
        e.pid = te.pid;
        e.pgd = te.pgd;
        e.name = te.name.c_str();
        e.fullname = te.fullname.c_str();
        e.vaddr = te.base;
        e.size = te.size;
        s.registry.dispatch(e, true);
    }
}

}  // namespace pyrebox
