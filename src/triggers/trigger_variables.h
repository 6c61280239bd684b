// Trigger variables: per callback handle, key -> value, shared by the
// trigger (get_var/set_var, vCPU threads) and Python (set/get_trigger_var).
//
// Ownership follows PyREBox: a value is memory allocated with malloc and
// owned by the store, freed with free() when replaced or erased. Kinds record
// how Python reads a value back: Uint and Str were set from Python or with
// set_var_uint/set_var_str; Pointer was set by the trigger with set_var and is
// read by Python as a PyObject* (PyREBox's convention).
#pragma once

#include <cstdint>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace pyrebox::triggers {

enum class VarKind { Pointer, Uint, Str };

struct Variable {
    void* value = nullptr;
    VarKind kind = VarKind::Pointer;
};

class VariableStore {
public:
    void* get(unsigned handle, const std::string& key) const;
    // The same for triggers, which ask for the same few variables on every
    // event: answered from a small per-thread cache while no variable of
    // any trigger has changed since (no lock, no allocation).
    void* get_cached(unsigned handle, const char* key) const;
    std::optional<Variable> lookup(unsigned handle, const std::string& key) const;
    // Replaces (freeing the previous value) or creates.
    void set(unsigned handle, const std::string& key, void* value, VarKind kind);
    // `word_size` bytes (4 or 8) of `value`, malloc'ed.
    void set_uint(unsigned handle, const std::string& key, uint64_t value, int word_size);
    void set_str(unsigned handle, const std::string& key, const std::string& value);
    void remove(unsigned handle, const std::string& key, bool free_value);
    void erase(unsigned handle);

private:
    mutable std::mutex lock_;
    // Bumped by every change; the per-thread caches compare it.
    std::atomic<uint64_t> version_{1};
    std::map<unsigned, std::map<std::string, Variable>> vars_;
};

VariableStore& variables();

}  // namespace pyrebox::triggers
