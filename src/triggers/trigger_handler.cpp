#include "triggers/trigger_handler.h"

#include <atomic>

#include "triggers/trigger_call.h"
#include "triggers/trigger_crash.h"
#include "triggers/trigger_variables.h"

namespace pyrebox::triggers {

namespace {
GilHooks g_hooks;
std::atomic<unsigned> g_next_handle{1};
}  // namespace

void set_gil_hooks(GilHooks hooks) { g_hooks = hooks; }

unsigned next_trigger_handle() { return g_next_handle++; }

TriggerHandler::TriggerHandler(unsigned handle, std::shared_ptr<TriggerLibrary> library,
                               std::shared_ptr<CallbackHandler> inner, bool needs_gil,
                               bool target_64bit)
    : handle_(handle), library_(std::move(library)), inner_(std::move(inner)),
      needs_gil_(needs_gil && g_hooks.enter != nullptr), target_64bit_(target_64bit) {}

TriggerHandler::~TriggerHandler() {
    void* gil = needs_gil_ ? g_hooks.enter() : nullptr;
    library_->clean(handle_);
    if (gil != nullptr || needs_gil_) {
        g_hooks.leave(gil);
    }
    variables().erase(handle_);
}

void TriggerHandler::deliver(const Event& event) {
    // The state a trigger sees is the state after the instruction/block for
    // "end" events, as the Python callback sees it.
    const bool after = event.type == CallbackType::BlockEnd ||
                       event.type == CallbackType::InsnEnd ||
                       event.type == CallbackType::OpcodeRange;
    TriggerCpu cpu{event.cpu_index, after ? event.next_pc : event.pc};
    void* gil = needs_gil_ ? g_hooks.enter() : nullptr;
    int decision;
    {
        // A crash in the call is reported as this trigger's, on this event.
        const TriggerCall call{library_.get(), &event};
        const TriggerCallScope scope(call);
        decision =
            target_64bit_ ? call_trigger_64(library_->trigger, handle_, event, &cpu, &event.tb)
                          : call_trigger_32(library_->trigger, handle_, event, &cpu, &event.tb);
    }
    if (needs_gil_) {
        g_hooks.leave(gil);
    }
    if (decision != 0) {
        inner_->deliver(event);
    }
}

bool TriggerHandler::vaddr_window(uint64_t& begin, uint64_t& end) const {
    if (library_->vaddr_window == nullptr) {
        return false;
    }
    void* gil = needs_gil_ ? g_hooks.enter() : nullptr;
    int bounded = 0;
    // The trigger writes words of the target's size.
    if (target_64bit_) {
        uint64_t b = 0, e = 0;
        bounded = reinterpret_cast<int (*)(unsigned, uint64_t*, uint64_t*)>(
            library_->vaddr_window)(handle_, &b, &e);
        begin = b;
        end = e;
    } else {
        uint32_t b = 0, e = 0;
        bounded = reinterpret_cast<int (*)(unsigned, uint32_t*, uint32_t*)>(
            library_->vaddr_window)(handle_, &b, &e);
        begin = b;
        end = e;
    }
    if (needs_gil_) {
        g_hooks.leave(gil);
    }
    return bounded != 0;
}

}  // namespace pyrebox::triggers
