// The guest kernel's symbol table in the session: loading one from a file,
// and building one from guest memory when none was given.
//
// Building: with no table configured, the bindings arm TableFromMemory with
// a builder (Python: it generates the ISF from the kernel's own .BTF and
// kallsyms in guest memory, or takes it from the per-kernel cache). At CR3
// loads it waits until the kernel proper runs processes (the PC in the
// kernel's half of the address space, loading a CR3 other than the first
// one seen there: before that the decompressor may still relocate the
// image, and the kernel has not yet kept its boot parameters, which tell
// its link-time addresses), finds linux_banner in physical memory, and calls
// the builder once, on that vCPU's thread, with every other vCPU frozen and
// the guest's clock stopped: the guest does not run, and does not see the
// time pass, until the table is loaded, so no event of the boot is missed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "base/expected.h"

namespace pyrebox {

// Loads the ISF at `path` into the session on this thread, replacing the
// table there. On failure introspection is off with the reason as
// linux_off_reason, and the reason is returned. Prints the outcome.
struct Session;

Expected<bool> load_linux_table(Session& s, const std::string& path);

class TableFromMemory {
public:
    // Called with the banner's text and physical address; returns the path
    // of the table it loaded, or why there is none (printed by the builder).
    using Builder = std::function<Expected<std::string>(const std::string& banner, uint64_t paddr)>;

    explicit TableFromMemory(Session& session) : session_(session) {}

    void arm(Builder builder);
    bool armed() const { return armed_.load(std::memory_order_relaxed); }

    // vCPU `vcpu` loads CR3 (its thread, inside a callback). Cheap unless
    // armed.
    void on_cr3_load(int vcpu, uint64_t cr3) {
        if (armed()) {
            attempt(vcpu, cr3 & ~uint64_t{0xfff} & ((uint64_t{1} << 52) - 1));
        }
    }

private:
    void attempt(int vcpu, uint64_t pgd);

    Session& session_;
    std::atomic<bool> armed_{false};
    std::mutex lock_;
    Builder builder_;
    uint64_t attempts_ = 0, next_attempt_ = 0;
    int scans_ = 0;
    uint64_t first_kernel_pgd_ = 0;  // the first CR3 loaded by the kernel proper
};

}  // namespace pyrebox
