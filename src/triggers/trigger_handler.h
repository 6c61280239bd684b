// A callback with a native trigger in front: the trigger sees every event of
// the callback (in every process) and decides whether the inner handler
// (Python) gets it.
#pragma once

#include <memory>

#include "engine/callback_registry.h"
#include "triggers/trigger_library.h"

namespace pyrebox::triggers {

// How a trigger that uses the Python C API gets the GIL around its calls
// (set by the Python runtime; triggers without Python need none).
struct GilHooks {
    void* (*enter)() = nullptr;
    void (*leave)(void*) = nullptr;
};
void set_gil_hooks(GilHooks hooks);

class TriggerHandler final : public CallbackHandler {
public:
    TriggerHandler(unsigned handle, std::shared_ptr<TriggerLibrary> library,
                   std::shared_ptr<CallbackHandler> inner, bool needs_gil, bool target_64bit);
    // Calls the trigger's clean(handle), then frees the variables left.
    ~TriggerHandler() override;

    void deliver(const Event& event) override;
    // The trigger's own vaddr_window export, when it has one.
    bool vaddr_window(uint64_t& begin, uint64_t& end) const override;
    unsigned handle() const { return handle_; }

private:
    unsigned handle_;
    std::shared_ptr<TriggerLibrary> library_;
    std::shared_ptr<CallbackHandler> inner_;
    bool needs_gil_;
    bool target_64bit_;
};

// A fresh callback_handle_t for a trigger instance.
unsigned next_trigger_handle();

}  // namespace pyrebox::triggers
