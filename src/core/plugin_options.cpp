#include "core/plugin_options.h"

#include <charconv>

namespace pyrebox {

namespace {
constexpr const char* kValidKeys = "conf, venv, pythonpath, out";
}

Expected<PluginOptions> parse_plugin_options(const std::vector<std::string>& args,
                                             const std::string& source_dir) {
    PluginOptions opts;
    opts.venv = source_dir + "/.venv";
    opts.pythonpath = source_dir + "/python";
    for (const auto& arg : args) {
        const auto eq = arg.find('=');
        if (eq == std::string::npos) {
            return Error{"plugin argument '" + arg + "' is not key=value (valid keys: " +
                         kValidKeys + ")"};
        }
        const std::string key = arg.substr(0, eq);
        const std::string value = arg.substr(eq + 1);
        if (key == "conf") {
            opts.conf = value;
        } else if (key == "venv") {
            opts.venv = value;
        } else if (key == "pythonpath") {
            opts.pythonpath = value;
        } else if (key == "out") {
            int fd = -1;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), fd);
            if (ec != std::errc() || end != value.data() + value.size() || fd < 0) {
                return Error{"plugin argument out='" + value +
                             "' is not a file descriptor number"};
            }
            opts.out_fd = fd;
        } else {
            return Error{"unknown plugin argument '" + key + "' (valid keys: " + kValidKeys +
                         ")"};
        }
    }
    return opts;
}

}  // namespace pyrebox
