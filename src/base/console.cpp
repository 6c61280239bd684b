#include "base/console.h"

#include <cerrno>
#include <string>
#include <unistd.h>

namespace pyrebox {

void Console::set_fd(int fd) {
    std::lock_guard<std::mutex> guard(lock_);
    fd_ = fd;
}

void Console::write_lines(std::string_view prefix, std::string_view text) {
    std::lock_guard<std::mutex> guard(lock_);
    std::string line;
    while (true) {
        const auto end = text.find('\n');
        line.assign(prefix);
        line.append(text.substr(0, end));
        line.push_back('\n');
        write_all(line);
        if (end == std::string_view::npos || end + 1 == text.size()) {
            break;
        }
        text.remove_prefix(end + 1);
    }
}

void Console::write_all(std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;  // Nowhere left to report a broken console.
        }
        bytes.remove_prefix(static_cast<size_t>(n));
    }
}

Console& console() {
    // Never destroyed: used by exit paths that run after static destructors.
    static Console* instance = new Console;
    return *instance;
}

}  // namespace pyrebox
