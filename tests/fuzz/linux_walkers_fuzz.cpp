// The Linux walkers (vmi/linux/linux_kernel): the process list, each
// process's VMAs and mapped files, single tasks and VMAs, arguments, dentry
// paths, the kernel's module list, the per-CPU current task, over hostile
// memory laid out as linux_layout.h describes.
//
// Input: physical memory from address 0 = kernel virtual memory (FlatRam).
//   [0]      the layout variant (linux_layout.h); bit 7: kpti
//   [8..15]  a dentry and [16..23] a vfsmount for dentry_path
//   [24]     a CPU number for current_thread
// init_task is at 0x100, the modules list at 0x40 (see make_seeds.py).
#include <cstdint>
#include <string>

#include "fuzz_memory.h"
#include "linux_layout.h"

using pyrebox::fuzz::FlatRam;
using namespace pyrebox::vmi;
using namespace pyrebox::vmi::linux_guest;
namespace layout = pyrebox::fuzz::linux_layout;

namespace {

// Only the first few of each list are looked into: the lists themselves
// are walked whole by the calls that return them.
constexpr size_t kLookInto = 4;

void check_path(const pyrebox::Expected<std::string>& path) {
    if (path) {
        FUZZ_CHECK(path->size() <= LinuxKernel::kMaxPathBytes);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FlatRam ram(data, size);
    const unsigned flags = static_cast<unsigned>(ram.get(0, 1));
    const bool kpti = flags & 0x80;
    const auto kernel = layout::kernel(flags);

    if (auto procs = kernel.processes(ram, kpti)) {
        FUZZ_CHECK(procs->size() <= LinuxKernel::kMaxListEntries + 1);
        for (size_t i = 0; i < procs->size() && i < kLookInto; ++i) {
            const Process& p = (*procs)[i];
            (void)kernel.task(ram, p.kaddr, kpti);
            (void)kernel.exec_arguments(ram, p.kaddr, kpti);
            if (p.mm == 0) {
                continue;
            }
            (void)kernel.mm_pgd(ram, p.mm, kpti);
            (void)kernel.mm_modules(ram, p.mm);
            if (auto vmas = kernel.mm_vmas(ram, p.mm)) {
                for (size_t j = 0; j < vmas->size() && j < kLookInto; ++j) {
                    if (auto v = kernel.vma(ram, (*vmas)[j]); v && v->file != 0) {
                        check_path(kernel.file_path(ram, v->file));
                    }
                }
            }
        }
        if (!procs->empty() && (*procs)[0].pgd != 0) {
            (void)kernel.modules(ram, (*procs)[0].pgd, kpti);
        }
    }
    if (auto mods = kernel.kernel_modules(ram)) {
        for (size_t i = 0; i < mods->size() && i < kLookInto; ++i) {
            if ((*mods)[i].kaddr != 0) {
                (void)kernel.kernel_module(ram, (*mods)[i].kaddr);
            }
        }
    }
    check_path(kernel.dentry_path(ram, ram.get(8), ram.get(16)));
    (void)kernel.current_thread(ram, static_cast<unsigned>(ram.get(24, 1)) % 8);
    (void)kernel.kernel_string(ram, ram.get(8), 256);
    return 0;
}
