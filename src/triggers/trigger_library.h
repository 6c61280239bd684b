// A loaded trigger shared object: its entry points, checked at load.
#pragma once

#include <memory>
#include <string>

#include "core/expected.h"

namespace pyrebox::triggers {

struct TriggerLibrary {
    std::string path;
    void* dl = nullptr;
    int (*get_type)() = nullptr;
    void* trigger = nullptr;  // int trigger(callback_handle_t, callback_params_t)
    void (*clean)(unsigned handle) = nullptr;
    ~TriggerLibrary();
};

// dlopen()s `path` and resolves get_type, trigger and clean; an error names
// the file and what is missing (or the loader's message).
Expected<std::shared_ptr<TriggerLibrary>> load_trigger(const std::string& path);

}  // namespace pyrebox::triggers
