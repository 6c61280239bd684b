#include "app/linux_introspection.h"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include "base/console.h"
#include "app/session.h"
#include "base/hex.h"

namespace pyrebox {

namespace {
std::mutex g_locate_lock;

std::string slides(const vmi::linux_guest::KernelLocation& loc) {
    return "physical slide " + hex(loc.phys_slide) + ", virtual slide " + hex(loc.virt_slide);
}
}  // namespace

bool linux_symbols_settled(Session& s) {
    const std::shared_future<void>& loading = s.linux_loading;
    return !loading.valid() ||
           loading.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

Expected<vmi::linux_guest::LinuxKernel*> located_linux_kernel(Session& s) {
    using vmi::PagingMode;
    if (!linux_symbols_settled(s)) {
        return Error{"Linux introspection is not ready: the symbol table is still loading"};
    }
    std::lock_guard<std::mutex> guard(g_locate_lock);
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
    if (mode == PagingMode::None) {
        return Error{
            "the Linux kernel cannot be located yet: vCPU 0 has not turned paging on "
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
    console().message("Linux kernel located: " + slides(s.linux_kernel->location()));
    return s.linux_kernel.get();
}

bool linux_current_thread(Session& s, int vcpu, uint64_t& pid, uint64_t& tid) {
    auto kernel = located_linux_kernel(s);
    if (!kernel) {
        return false;
    }
    auto thread = (*kernel)->current_thread(s.machine->physical_memory(),
                                            static_cast<unsigned>(vcpu));
    if (!thread) {
        return false;
    }
    pid = thread->pid;
    tid = thread->tid;
    return true;
}

bool linux_compat_landing_pad(Session& s, int vcpu, uint64_t& pc) {
    auto kernel = located_linux_kernel(s);
    if (!kernel) {
        return false;
    }
    auto pad = (*kernel)->compat_landing_pad(s.machine->physical_memory(),
                                             static_cast<unsigned>(vcpu));
    if (!pad) {
        return false;
    }
    pc = *pad;
    return true;
}

bool recheck_linux_location(Session& s) {
    if (!linux_symbols_settled(s)) {
        return false;
    }
    std::lock_guard<std::mutex> guard(g_locate_lock);
    if (!s.linux_kernel || !s.linux_kernel->located()) {
        return false;
    }
    auto& mem = s.machine->physical_memory();
    const auto mode = s.linux_kernel->mode();
    const vmi::linux_guest::KernelLocation old = s.linux_kernel->location();
    auto still = vmi::linux_guest::verify_location(s.linux_kernel->symbols(), mem, mode, old);
    if (still) {
        return false;
    }
    const uint64_t ram = s.ram_bytes != 0 ? s.ram_bytes : (4ull << 30);
    auto found = vmi::linux_guest::locate_kernel(s.linux_kernel->symbols(), mem, ram, mode);
    if (!found || (found->phys_slide == old.phys_slide && found->virt_slide == old.virt_slide)) {
        return false;  // nothing better yet: asked again at the next failure
    }
    console().message("the Linux kernel location found earlier (" + slides(old) +
                      ") no longer holds (" + still.error() + "); Linux kernel located again: " +
                      slides(*found));
    s.linux_kernel->set_location(*found, mode);
    return true;
}

}  // namespace pyrebox
