#include "qemu/contained.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "base/console.h"

namespace pyrebox::qemu {

void report_contained(const char* where, const char* what) noexcept {
    try {
        static std::mutex lock;
        static std::unordered_map<const char*, uint64_t> seen;
        uint64_t count = 0;
        {
            std::lock_guard<std::mutex> guard(lock);
            count = ++seen[where];
        }
        // The first, then at each power of ten: a failure on every event
        // does not flood the console.
        uint64_t n = count;
        while (n % 10 == 0) {
            n /= 10;
        }
        if (n != 1) {
            return;
        }
        console().error("internal error in " + std::string(where) + ": " + what + " (" +
                        std::to_string(count) +
                        (count == 1 ? " time" : " times") +
                        "); the event was dropped and the VM runs on");
    } catch (...) {
        // Out of memory even for the message: nothing more can be done.
    }
}

}  // namespace pyrebox::qemu
