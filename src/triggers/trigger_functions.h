// Functions a trigger declared with declare_function, callable from Python by
// name (CallbackManager.call_trigger_function).
#pragma once

#include <string>

namespace pyrebox::triggers {

using TriggerFunction = void (*)(unsigned handle);

void declare(unsigned handle, const std::string& name, TriggerFunction function);
TriggerFunction lookup_function(unsigned handle, const std::string& name);
void forget_functions(unsigned handle);

}  // namespace pyrebox::triggers
