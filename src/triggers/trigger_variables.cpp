#include "triggers/trigger_variables.h"

#include <cstdlib>
#include <cstring>

#include "base/address_windows.h"

namespace pyrebox::triggers {

void* VariableStore::get(unsigned handle, const std::string& key) const {
    auto var = lookup(handle, key);
    return var ? var->value : nullptr;
}

void* VariableStore::get_cached(unsigned handle, const char* key) const {
    struct Entry {
        const VariableStore* store = nullptr;
        uint64_t version = 0;
        unsigned handle = 0;
        char key[32] = {};
        void* value = nullptr;
    };
    constexpr size_t kEntries = 8;
    struct Cache {
        Entry entries[kEntries];
        size_t next = 0;
    };
    // Per thread, allocated on first use and kept for the thread's life;
    // reached through an initial-exec pointer (no __tls_get_addr per call
    // from this dlopen'ed library, no construction guard).
    static thread_local Cache* t_cache __attribute__((tls_model("initial-exec"))) = nullptr;
    if (t_cache == nullptr) {
        t_cache = new Cache;
    }
    Entry (&cache)[kEntries] = t_cache->entries;
    size_t& next = t_cache->next;
    const uint64_t version = version_.load(std::memory_order_acquire);
    for (const Entry& e : cache) {
        if (e.store == this && e.version == version && e.handle == handle) {
            // Inline comparison: keys are short, and this runs for every
            // variable a trigger reads on every event.
            size_t i = 0;
            while (i < sizeof(Entry::key) && e.key[i] == key[i] && key[i] != '\0') {
                ++i;
            }
            if (i < sizeof(Entry::key) && e.key[i] == key[i]) {
                return e.value;
            }
        }
    }
    const size_t length = std::strlen(key);
    if (length >= sizeof(Entry::key)) {
        return get(handle, key);
    }
    void* value = get(handle, key);
    Entry& e = cache[next];
    next = (next + 1) % kEntries;
    e.store = this;
    e.version = version;  // read before the lookup: a later change invalidates it
    e.handle = handle;
    std::memcpy(e.key, key, length + 1);
    e.value = value;
    return value;
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
        version_.fetch_add(1, std::memory_order_release);
        address_windows_changed();  // a trigger's window may depend on it
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
        version_.fetch_add(1, std::memory_order_release);
        address_windows_changed();  // a trigger's window may depend on it
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
        version_.fetch_add(1, std::memory_order_release);
        address_windows_changed();  // a trigger's window may depend on it
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
