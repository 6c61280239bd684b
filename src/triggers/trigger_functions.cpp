#include "triggers/trigger_functions.h"

#include <map>
#include <mutex>

namespace pyrebox::triggers {

namespace {
std::mutex& lock() {
    static std::mutex* m = new std::mutex;
    return *m;
}
std::map<unsigned, std::map<std::string, TriggerFunction>>& table() {
    static auto* t = new std::map<unsigned, std::map<std::string, TriggerFunction>>;
    return *t;
}
}  // namespace

void declare(unsigned handle, const std::string& name, TriggerFunction function) {
    std::lock_guard<std::mutex> guard(lock());
    table()[handle][name] = function;
}

TriggerFunction lookup_function(unsigned handle, const std::string& name) {
    std::lock_guard<std::mutex> guard(lock());
    auto h = table().find(handle);
    if (h == table().end()) {
        return nullptr;
    }
    auto f = h->second.find(name);
    return f == h->second.end() ? nullptr : f->second;
}

void forget_functions(unsigned handle) {
    std::lock_guard<std::mutex> guard(lock());
    table().erase(handle);
}

}  // namespace pyrebox::triggers
