#include "qemu/registers.h"

#include <algorithm>
#include <cctype>

#include "qemu/plugin_api.h"

namespace pyrebox::qemu {

void RegisterTable::capture() {
    if (captured()) {
        return;
    }
    GArray* regs = qemu_plugin_get_registers();
    std::vector<std::string> names;
    for (unsigned i = 0; i < regs->len; ++i) {
        const auto& desc = g_array_index(regs, qemu_plugin_reg_descriptor, i);
        names.emplace_back(desc.name);
    }
    g_array_free(regs, true);
    names_ = std::move(names);
}

std::optional<int> RegisterTable::number(const std::string& name) const {
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (size_t i = 0; i < names_.size(); ++i) {
        if (names_[i] == lower) {
            return static_cast<int>(i);
        }
    }
    return std::nullopt;
}

RegisterTable& registers() {
    // Never destroyed: used by exit paths that run after static destructors.
    static RegisterTable* table = new RegisterTable;
    return *table;
}

}  // namespace pyrebox::qemu
