#include "core/linux_introspection.h"

#include <chrono>
#include <cstdio>
#include <mutex>

#include "core/console.h"
#include "core/session.h"

namespace pyrebox {

namespace {
std::mutex g_locate_lock;
}  // namespace

bool linux_symbols_settled() {
    const std::shared_future<void>& loading = session().linux_loading;
    return !loading.valid() ||
           loading.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

Expected<vmi::linux_guest::LinuxKernel*> located_linux_kernel() {
    using vmi::PagingMode;
    if (!linux_symbols_settled()) {
        return Error{"Linux introspection is not ready: the symbol table is still loading"};
    }
    std::lock_guard<std::mutex> guard(g_locate_lock);
    Session& s = session();
    if (!s.linux_kernel) {
        return Error{"Linux introspection is off: " +
                     (s.linux_off_reason.empty() ? std::string("no symbol table loaded")
                                                 : s.linux_off_reason)};
    }
    if (s.linux_kernel->located()) {
        return s.linux_kernel.get();
    }
    if (!s.linux_locate_error.empty()) {
        return Error{s.linux_locate_error};
    }
    const PagingMode mode = s.machine->paging_mode(0);
    if (mode != PagingMode::Long4 && mode != PagingMode::Long5) {
        return Error{
            "the Linux kernel cannot be located yet: vCPU 0 is not in 64-bit long mode "
            "(the guest has not booted far enough)"};
    }
    const uint64_t ram = s.ram_bytes != 0 ? s.ram_bytes : (4ull << 30);
    auto located = s.linux_kernel->locate(s.machine->physical_memory(), ram, mode);
    if (!located) {
        const std::string message =
            "cannot locate the Linux kernel in guest memory: " + located.error();
        // Another kernel's banner where this one's should be, or a layout
        // the table says is unsupported, does not change with time: say it
        // once, and do not scan memory again.
        const std::string& why = located.error();
        if (why.rfind("kernel banner mismatch", 0) == 0 ||
            why.rfind("unsupported kernel layout", 0) == 0 ||
            why.find("has no linux_banner symbol") != std::string::npos) {
            s.linux_locate_error = message;
            console().error(s.linux_locate_error);
        }
        return Error{message};
    }
    const auto& loc = s.linux_kernel->location();
    char text[160];
    std::snprintf(text, sizeof text,
                  "Linux kernel located: physical slide 0x%llx, virtual slide 0x%llx",
                  static_cast<unsigned long long>(loc.phys_slide),
                  static_cast<unsigned long long>(loc.virt_slide));
    console().message(text);
    return s.linux_kernel.get();
}

}  // namespace pyrebox
