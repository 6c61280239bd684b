// The target's register table: names as QEMU's gdbstub exposes them, in gdb
// order (a register's index is its gdb register number). Captured once, at
// the first vCPU's init (qemu_plugin_get_registers needs vCPU context).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pyrebox::qemu {

class RegisterTable {
public:
    // Thread: a vCPU thread, inside a vCPU callback. Idempotent.
    void capture();
    bool captured() const { return !names_.empty(); }
    const std::vector<std::string>& names() const { return names_; }
    // gdb register number of `name` (case-insensitive), if the target has it.
    std::optional<int> number(const std::string& name) const;

private:
    std::vector<std::string> names_;
};

RegisterTable& registers();

}  // namespace pyrebox::qemu
