#include "app/kernel_table.h"

#include <algorithm>

#include "base/console.h"
#include "app/session.h"
#include "vmi/linux/banner_scan.h"

namespace pyrebox {

namespace {

// Attempts at CR3 loads 1, 2, 4, ... apart, at most this many apart.
constexpr uint64_t kMaxAttemptGap = 1024;
// Scans of memory (with the kernel proper running) that find no banner
// before giving up: the guest runs something that is not Linux.
constexpr int kMaxScans = 6;
// The kernel's half of the x86-64 address space.
constexpr uint64_t kKernelHalf = 0xffff800000000000ull;

}  // namespace

Expected<bool> load_linux_table(Session& s, const std::string& path) {
    auto table = vmi::SymbolTable::load(path);
    std::string problem;
    if (!table) {
        problem = table.error();
    } else if (!table->banner()) {
        problem = path + ": the symbol table has no kernel banner";
    } else if (auto supported = vmi::linux_guest::check_supported_kernel(*table->banner());
               !supported) {
        problem = path + ": " + supported.error();
    }
    if (!problem.empty()) {
        s.linux_off_reason = problem;
        console().write_lines("[pyrebox] warning: ", "Linux symbols not loaded: " + problem +
                                                         "; process and module lists are off");
        return Error{problem};
    }
    const std::string banner = *table->banner();
    s.linux_kernel = std::make_unique<vmi::linux_guest::LinuxKernel>(*table);
    s.linux_locate_error.clear();
    s.linux_off_reason.clear();
    console().message("Linux symbols: " + banner.substr(0, banner.find_last_not_of(" \n") + 1));
    return true;
}

void TableFromMemory::arm(Builder builder) {
    std::lock_guard<std::mutex> guard(lock_);
    builder_ = std::move(builder);
    attempts_ = next_attempt_ = 0;
    scans_ = 0;
    first_kernel_pgd_ = 0;
    armed_.store(true);
}

void TableFromMemory::attempt(int vcpu, uint64_t pgd) {
    std::unique_lock<std::mutex> guard(lock_, std::try_to_lock);
    if (!guard.owns_lock() || !armed_.load()) {
        return;  // another vCPU is at it, or it is done
    }
    Machine& m = *session_.machine;
    if (first_kernel_pgd_ == 0 || pgd == first_kernel_pgd_) {
        auto pc = m.read_register(vcpu, "rip");
        if (pc && *pc >= kKernelHalf && first_kernel_pgd_ == 0) {
            first_kernel_pgd_ = pgd;
        }
        return;  // not the kernel proper, or not yet running processes
    }
    if (++attempts_ < next_attempt_) {
        return;
    }
    next_attempt_ = attempts_ + std::min<uint64_t>(attempts_, kMaxAttemptGap);
    auto ram = m.memory_map();
    if (!ram) {
        armed_.store(false);
        session_.linux_off_reason = "no symbol table given, and guest memory cannot be scanned "
                                     "for the kernel: " + ram.error();
        console().write_lines("[pyrebox] warning: ", session_.linux_off_reason);
        return;
    }
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& [start, end] : *ram) {
        ranges.emplace_back(start, end - start);
    }
    auto banner = vmi::linux_guest::find_linux_banner(m.physical_memory(), ranges);
    if (!banner) {
        if (++scans_ >= kMaxScans) {
            armed_.store(false);
            session_.linux_off_reason =
                "no symbol table given, and no Linux kernel banner ('Linux version ...') is in "
                "guest memory to build one from";
            console().write_lines("[pyrebox] warning: ", session_.linux_off_reason);
        }
        return;
    }
    armed_.store(false);  // one build, whatever its outcome
    Builder builder = std::move(builder_);
    builder_ = nullptr;
    const bool frozen = m.freeze_other_vcpus();
    const bool stopped = m.stop_guest_clock();
    auto built = builder(banner->text, banner->paddr);
    if (stopped) {
        m.start_guest_clock();
    }
    if (frozen) {
        m.thaw_other_vcpus();
    }
    if (built) {
        session_.process_events.retry_now();  // the boot's events from here on
    }  // else: the builder printed why
}

}  // namespace pyrebox
