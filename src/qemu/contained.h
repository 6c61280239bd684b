// Nothing thrown in our code may unwind into QEMU: its callers are C (and
// TCG-generated code), so an exception there ends the process
// (std::terminate). Every entry from QEMU runs its work through contained():
// an exception (out of memory under a hostile guest, a bug) is reported on
// the console, once per entry point with a count of repeats, and the VM
// runs on.
#pragma once

#include <exception>

namespace pyrebox::qemu {

// Reports an exception caught at entry point `where` (a string literal:
// its address keys the once-only report).
void report_contained(const char* where, const char* what) noexcept;

template <typename F>
void contained(const char* where, F&& fn) noexcept {
    try {
        fn();
    } catch (const std::exception& e) {
        report_contained(where, e.what());
    } catch (...) {
        report_contained(where, "an exception that is not a std::exception");
    }
}

}  // namespace pyrebox::qemu
