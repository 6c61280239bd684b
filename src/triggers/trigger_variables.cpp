#include "triggers/trigger_variables.h"

#include <cstdlib>
#include <cstring>

namespace pyrebox::triggers {

void* VariableStore::get(unsigned handle, const std::string& key) const {
    auto var = lookup(handle, key);
    return var ? var->value : nullptr;
}

std::optional<Variable> VariableStore::lookup(unsigned handle, const std::string& key) const {
    std::lock_guard<std::mutex> guard(lock_);
    auto h = vars_.find(handle);
    if (h == vars_.end()) {
        return std::nullopt;
    }
    auto v = h->second.find(key);
    if (v == h->second.end()) {
        return std::nullopt;
    }
    return v->second;
}

void VariableStore::set(unsigned handle, const std::string& key, void* value, VarKind kind) {
    void* previous = nullptr;
    {
        std::lock_guard<std::mutex> guard(lock_);
        Variable& slot = vars_[handle][key];
        previous = slot.value;
        slot.value = value;
        slot.kind = kind;
    }
    if (previous != nullptr && previous != value) {
        std::free(previous);
    }
}

void VariableStore::set_uint(unsigned handle, const std::string& key, uint64_t value,
                             int word_size) {
    void* memory = std::malloc(8);
    if (word_size == 4) {
        const auto narrow = static_cast<uint32_t>(value);
        std::memcpy(memory, &narrow, 4);
    } else {
        std::memcpy(memory, &value, 8);
    }
    set(handle, key, memory, VarKind::Uint);
}

void VariableStore::set_str(unsigned handle, const std::string& key, const std::string& value) {
    set(handle, key, strdup(value.c_str()), VarKind::Str);
}

void VariableStore::remove(unsigned handle, const std::string& key, bool free_value) {
    void* value = nullptr;
    {
        std::lock_guard<std::mutex> guard(lock_);
        auto h = vars_.find(handle);
        if (h == vars_.end()) {
            return;
        }
        auto v = h->second.find(key);
        if (v == h->second.end()) {
            return;
        }
        value = v->second.value;
        h->second.erase(v);
    }
    if (free_value && value != nullptr) {
        std::free(value);
    }
}

void VariableStore::erase(unsigned handle) {
    std::map<std::string, Variable> gone;
    {
        std::lock_guard<std::mutex> guard(lock_);
        auto h = vars_.find(handle);
        if (h == vars_.end()) {
            return;
        }
        gone = std::move(h->second);
        vars_.erase(h);
    }
    for (auto& [key, var] : gone) {
        std::free(var.value);
    }
}

VariableStore& variables() {
    // Never destroyed: triggers may still run while the process exits.
    static VariableStore* store = new VariableStore;
    return *store;
}

}  // namespace pyrebox::triggers
