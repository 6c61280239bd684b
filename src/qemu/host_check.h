// What QEMU PyREBox runs in: checked once at install.
#pragma once

#include <optional>
#include <string>

namespace pyrebox::qemu {

// The plugin API version this plugin is written against (exported to QEMU).
inline constexpr int kPluginApiVersion = 4;

// Returns a one-line error when the target, emulation mode or plugin API
// range cannot host PyREBox; nullopt when it can.
std::optional<std::string> check_host(const std::string& target, bool system_emulation,
                                      int api_min, int api_cur);

}  // namespace pyrebox::qemu
