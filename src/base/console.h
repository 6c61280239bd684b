// The user's console: where PyREBox and scripts print.
//
// Contract: every call writes whole lines with one write(2) per line, under a
// lock, so lines from vCPU threads and the main thread never interleave
// mid-line. The launcher reads this stream separately from the guest's serial
// console, which keeps the two distinguishable.
#pragma once

#include <mutex>
#include <string_view>

namespace pyrebox {

class Console {
public:
    explicit Console(int fd = 2) : fd_(fd) {}

    void set_fd(int fd);
    int fd() const { return fd_; }

    // Writes `text` with `prefix` before each of its lines; a missing final
    // newline is added.
    void write_lines(std::string_view prefix, std::string_view text);

    // A PyREBox message: "[pyrebox] text".
    void message(std::string_view text) { write_lines("[pyrebox] ", text); }
    // An error: "[pyrebox] error: text".
    void error(std::string_view text) { write_lines("[pyrebox] error: ", text); }

private:
    void write_all(std::string_view bytes);

    std::mutex lock_;
    int fd_;
};

// The process-wide console PyREBox prints to.
Console& console();

}  // namespace pyrebox
