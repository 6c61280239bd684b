#include "triggers/trigger_crash.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "base/callback_types.h"

namespace pyrebox::triggers {

thread_local TriggerThreadState g_trigger_thread __attribute__((tls_model("initial-exec")));

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
// Big enough for the handler and the write(2) it makes.
constexpr size_t kAltStackSize = 64 * 1024;

struct sigaction g_previous[NSIG];
std::atomic<int> g_fd{2};
std::once_flag g_installed;

const char* signal_name(int signal) {
    switch (signal) {
        case SIGSEGV: return "SIGSEGV";
        case SIGBUS: return "SIGBUS";
        case SIGILL: return "SIGILL";
        case SIGFPE: return "SIGFPE";
        case SIGABRT: return "SIGABRT";
    }
    return "a fatal signal";
}

// Appends to a fixed buffer; no allocation, no locale, no stdio.
class Line {
public:
    Line(char* out, int size) : out_(out), size_(size) {}
    Line& operator<<(const char* text) {
        while (text != nullptr && *text != '\0' && len_ + 1 < size_) {
            out_[len_++] = *text++;
        }
        return *this;
    }
    Line& operator<<(std::string_view text) {
        for (char c : text) {
            if (len_ + 1 >= size_) {
                break;
            }
            out_[len_++] = c;
        }
        return *this;
    }
    Line& number(long value) {
        char digits[24];
        int n = 0;
        const bool negative = value < 0;
        unsigned long v = negative ? 0UL - static_cast<unsigned long>(value)
                                   : static_cast<unsigned long>(value);
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        if (negative) {
            *this << "-";
        }
        while (n > 0 && len_ + 1 < size_) {
            out_[len_++] = digits[--n];
        }
        return *this;
    }
    int finish() {
        out_[len_] = '\0';
        return len_;
    }

private:
    char* out_;
    int size_;
    int len_ = 0;
};

void write_all(int fd, const char* text, size_t len) {
    while (len > 0) {
        const ssize_t n = ::write(fd, text, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        text += n;
        len -= static_cast<size_t>(n);
    }
}

// Puts the previous disposition back and lets the signal act under it: a
// fault (si_code > 0, raised by the CPU) happens again when the handler
// returns, at the same instruction; a signal that was sent (abort(),
// kill) is sent again and arrives once the handler returns.
void fall_back(int signal, const siginfo_t* info) {
    sigaction(signal, &g_previous[signal], nullptr);
    if (info == nullptr || info->si_code <= 0) {
        raise(signal);
    }
}

void on_fatal_signal(int signal, siginfo_t* info, void* context) {
    const int saved_errno = errno;
    const TriggerCall* call = g_trigger_thread.call;
    if (call != nullptr) {
        g_trigger_thread.call = nullptr;
        char text[1024];
        const int len = format_crash_report(*call, signal, text, sizeof text - 1);
        text[len] = '\n';
        write_all(g_fd.load(std::memory_order_relaxed), text, static_cast<size_t>(len) + 1);
        fall_back(signal, info);
        errno = saved_errno;
        return;
    }
    // Not a trigger's: the previous handler, as if this one were not there.
    const struct sigaction& previous = g_previous[signal];
    if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
        errno = saved_errno;
        previous.sa_sigaction(signal, info, context);
        return;
    }
    if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        fall_back(signal, info);
        errno = saved_errno;
        return;
    }
    errno = saved_errno;
    previous.sa_handler(signal);
}

}  // namespace

int format_crash_report(const TriggerCall& call, int signal, char* out, int size) {
    Line line(out, size);
    line << "[pyrebox] fatal: trigger '" << call.library->name.c_str() << "' ("
         << call.library->path.c_str() << ") crashed with " << signal_name(signal)
         << " while handling " << callback_type_name(call.event->type);
    if (call.event->cpu_index >= 0) {
        line << " (vCPU ";
        line.number(call.event->cpu_index) << ")";
    }
    line << "; QEMU stops";
    return line.finish();
}

void prepare_thread_for_crash_report() {
    g_trigger_thread.alt_stack_ready = true;
    stack_t current{};
    if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) {
        return;  // the thread has one already (QEMU's or a library's)
    }
    // Never freed: a thread keeps it until it ends, and QEMU's threads live
    // as long as the VM.
    stack_t stack{};
    stack.ss_sp = std::malloc(kAltStackSize);
    stack.ss_size = kAltStackSize;
    if (stack.ss_sp != nullptr && sigaltstack(&stack, nullptr) != 0) {
        std::free(stack.ss_sp);
    }
}

void install_crash_reporter(int fd) {
    g_fd.store(fd, std::memory_order_relaxed);
    std::call_once(g_installed, [] {
        for (int signal : kSignals) {
            struct sigaction action {};
            action.sa_sigaction = on_fatal_signal;
            action.sa_flags = SA_SIGINFO | SA_ONSTACK;
            sigemptyset(&action.sa_mask);
            sigaction(signal, &action, &g_previous[signal]);
        }
    });
}

}  // namespace pyrebox::triggers
