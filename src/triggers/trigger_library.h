// A loaded trigger shared object: its entry points, checked at load.
#pragma once

#include <memory>
#include <string>

#include "base/expected.h"

namespace pyrebox::triggers {

struct TriggerLibrary {
    std::string path;
    // The trigger's name: the file name without the folder and the
    // `-<target>-softmmu.so` (or `.so`) ending PyREBox builds it with.
    std::string name;
    void* dl = nullptr;
    int (*get_type)() = nullptr;
    void* trigger = nullptr;  // int trigger(callback_handle_t, callback_params_t)
    void (*clean)(unsigned handle) = nullptr;
    // Optional: `int accepts_type(callback_type_t)` for a trigger that serves
    // several callback types (its state shared between them).
    int (*accepts_type)(int type) = nullptr;
    // Optional: `int vaddr_window(callback_handle_t, pyrebox_target_ulong*
    // begin, pyrebox_target_ulong* end)`: nonzero when the trigger passes no
    // memory event whose vaddr is outside [*begin, *end) (see callbacks.h).
    void* vaddr_window = nullptr;
    ~TriggerLibrary();

    // Whether the trigger may be attached to a callback of `type`;
    // `at_address`: a BLOCK_BEGIN / INSN_BEGIN callback added at an address,
    // which also takes the SDK's OP_BLOCK_BEGIN_CB / OP_INSN_BEGIN_CB
    // triggers.
    bool accepts(int type, bool at_address) const;
};

// The SDK's types of triggers for callbacks at an address (callbacks.h):
// not callback types of their own.
constexpr int kOpBlockBeginType = 0;
constexpr int kOpInsnBeginType = 1;

// A trigger type's name: a callback type's, or OP_BLOCK_BEGIN_CB /
// OP_INSN_BEGIN_CB, or "unknown type N".
std::string trigger_type_name(int type);

// dlopen()s `path` and resolves get_type, trigger and clean; an error names
// the file and what is missing (or the loader's message).
Expected<std::shared_ptr<TriggerLibrary>> load_trigger(const std::string& path);

// `name` of the TriggerLibrary loaded from `path`.
std::string trigger_name(const std::string& path);

}  // namespace pyrebox::triggers
