#include "qemu/host_check.h"

namespace pyrebox::qemu {

std::optional<std::string> check_host(const std::string& target, bool system_emulation,
                                      int api_min, int api_cur) {
    const std::string supported =
        "PyREBox supports qemu-system-x86_64 and qemu-system-i386, QEMU >= 10.0 "
        "(plugin API >= 4)";
    if (target != "x86_64" && target != "i386") {
        return "unsupported QEMU target '" + target + "': " + supported;
    }
    if (!system_emulation) {
        return "user-mode QEMU is not supported: " + supported;
    }
    if (api_cur < kPluginApiVersion || api_min > kPluginApiVersion) {
        return "QEMU offers plugin API " + std::to_string(api_min) + ".." +
               std::to_string(api_cur) + ", this plugin needs " +
               std::to_string(kPluginApiVersion) + ": " + supported;
    }
    return std::nullopt;
}

}  // namespace pyrebox::qemu
