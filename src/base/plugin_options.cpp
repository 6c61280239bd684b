#include "base/plugin_options.h"

#include <charconv>
#include <cstdint>
#include <optional>

namespace pyrebox {

namespace {
constexpr const char* kValidKeys =
    "conf, venv, pythonpath, out, isf, ram, console, console_qmp, qmp, nic_send, nic_recv";

// "536870912", "512M", "2G": a byte count, with an optional binary suffix.
std::optional<uint64_t> parse_size(const std::string& text) {
    uint64_t number = 0;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    const auto [end, ec] = std::from_chars(first, last, number);
    if (ec != std::errc() || end == first) {
        return std::nullopt;
    }
    int shift = 0;
    if (end != last) {
        if (end + 1 != last) {
            return std::nullopt;
        }
        switch (*end) {
            case 'k': case 'K': shift = 10; break;
            case 'm': case 'M': shift = 20; break;
            case 'g': case 'G': shift = 30; break;
            case 't': case 'T': shift = 40; break;
            default: return std::nullopt;
        }
    }
    if (shift != 0 && number > (UINT64_MAX >> shift)) {
        return std::nullopt;
    }
    return number << shift;
}
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
        } else if (key == "isf") {
            opts.isf = value;
        } else if (key == "console") {
            opts.console = value;
        } else if (key == "console_qmp") {
            opts.console_qmp = value;
        } else if (key == "qmp") {
            opts.qmp = value;
        } else if (key == "nic_send") {
            opts.nic_send = value;
        } else if (key == "nic_recv") {
            opts.nic_recv = value;
        } else if (key == "ram") {
            auto bytes = parse_size(value);
            if (!bytes) {
                return Error{"plugin argument ram='" + value +
                             "' is not a size in bytes (e.g. 536870912 or 512M)"};
            }
            opts.ram_bytes = *bytes;
        } else {
            return Error{"unknown plugin argument '" + key + "' (valid keys: " + kValidKeys +
                         ")"};
        }
    }
    if (opts.nic_send.empty() != opts.nic_recv.empty()) {
        return Error{"plugin arguments nic_send and nic_recv go together (the two sockets "
                     "of the observed NIC)"};
    }
    return opts;
}

}  // namespace pyrebox
