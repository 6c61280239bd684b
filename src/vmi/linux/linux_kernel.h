// A running x86-64 Linux kernel seen from outside: its processes, the files
// each process maps, and the kernel's own modules, read from guest memory
// with the offsets of an ISF symbol table.
//
// Use: construct from the kernel's SymbolTable; locate() once the guest has
// booted far enough to have its page tables (it calls locate_kernel), or
// set_location() with a known KernelLocation; then the lists. Every kernel
// structure is read through the kernel's own page tables (init_top_pgt).
//
// Every offset comes from the ISF; a missing type, member or symbol is an
// error naming it. List walks are bounded (kMaxListEntries) and survive a
// broken link: the rest of a list is read backwards from its head, and an
// entry that does not read is listed with what is known and why
// (`partial`), never failing the list.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/expected.h"
#include "vmi/elf_symbols.h"
#include "vmi/isf.h"
#include "vmi/linux/kernel_locator.h"
#include "vmi/paging.h"

namespace pyrebox::vmi::linux_guest {

struct Process {
    uint64_t pid = 0;   // the thread group id (what user space calls the pid)
    uint64_t ppid = 0;  // real_parent->tgid
    std::string name;   // comm
    // The physical address of the process's top-level page table
    // (mm->pgd - page_offset_base), normalised as normalize_pgd does for
    // CR3 values; 0 for kernel threads (no mm).
    uint64_t pgd = 0;
    uint64_t kaddr = 0;  // the task_struct's kernel virtual address
    uint64_t mm = 0;     // the mm_struct's kernel virtual address; 0 for kernel threads
    // Why part of the entry could not be read (those members are 0 or
    // empty); empty when it read whole.
    std::string partial;
};

// One task_struct (a thread or a process's leader), read on its own.
struct Task {
    uint64_t kaddr = 0;
    uint64_t pid = 0;   // the thread id (task_struct.pid)
    uint64_t tgid = 0;  // the process id
    uint64_t mm = 0;    // 0: a kernel thread, or a task whose mm is gone
    uint64_t pgd = 0;   // normalised as in Process; 0 without mm
    std::string name;   // comm
};

// The thread a CPU runs (its per-CPU current task).
struct Thread {
    uint64_t kaddr = 0;  // the task_struct
    uint64_t tid = 0;    // task_struct.pid
    uint64_t pid = 0;    // task_struct.tgid
};

// What a process was started with: its argv, the number of environment
// strings and the path it was executed as (AT_EXECFN), as execve left them
// at the top of its stack (mm->arg_start..arg_end, env_start..env_end, and
// the path just above the environment).
struct ExecArguments {
    std::vector<std::string> argv;
    uint64_t envc = 0;
    std::string execfn;
};

// One vm_area_struct.
struct Vma {
    uint64_t start = 0, end = 0;
    uint64_t mm = 0;    // vm_mm
    uint64_t file = 0;  // vm_file; 0 for anonymous memory
};

// One memory region of a kernel module.
struct ModuleRegion {
    // Linux 6.4+: the mod_mem_type constant, lower case without "MOD_"
    // ("text", "data", "rodata", "ro_after_init", "init_text", ...);
    // older kernels: "core" (core_layout) and "init" (init_layout).
    std::string name;
    uint64_t base = 0;
    uint64_t size = 0;
};

struct Module {
    std::string name;      // basename
    std::string fullname;  // the path, from the dentries
    // A kernel module: its base and size as /proc/modules gives them for a
    // live module (the text's base; the sizes of the regions that outlive
    // its init added up: Linux 6.4+ keeps text, data, read-only data...
    // apart, older kernels have a core allocation). A mapped file: lowest
    // vm_start .. highest vm_end.
    uint64_t base = 0;
    uint64_t size = 0;
    // A kernel module: its regions of non-zero size, in the kernel's order,
    // init regions too while they exist (until its init has run); empty for
    // the kernel image and for mapped files.
    std::vector<ModuleRegion> regions;
    // A kernel module: the address of its struct module (0 for vmlinux).
    uint64_t kaddr = 0;
    // A mapped file: its identity, read through the struct file of its
    // lowest mapping (inode number, device of its super block, size and
    // modification time). `inode` 0: unknown (the ISF lacks the members).
    uint64_t inode = 0;
    uint64_t dev = 0;
    uint64_t file_size = 0;
    uint64_t mtime_sec = 0;
    uint64_t mtime_nsec = 0;
    // The file offset, in pages, that `base` maps (vm_pgoff of the lowest
    // mapping): 0 when the file's start is mapped at `base`.
    uint64_t base_pgoff = 0;
    // A mapped file: the struct file of its lowest mapping (0: unknown).
    uint64_t file = 0;
    // Why part of the entry could not be read (a kernel module whose struct
    // module does not read: only `kaddr` is known); empty when it read whole.
    std::string partial;
};

// The name a mapped file is listed and reported under when its path (or its
// mapping) does not read: "[unreadable 0x...]", with the address of its
// struct file (or vm_area_struct). No path has it (paths start with "/");
// the entry's `partial` says why.
std::string unreadable_file_name(uint64_t kaddr);

// The kernels introspection supports: x86-64 Linux kMinKernel through
// kMaxKernel, the range whose layouts were checked (a process's mappings in
// the mm->mmap list until 6.0 and in the maple tree from 6.1, module memory
// in core_layout until 6.3 and in mem[] from 6.4, the unmap functions of
// each generation). `banner` is the kernel's linux_banner ("Linux version
// 6.1.0-... "); an error says why a kernel is not supported and which are.
struct KernelVersion {
    unsigned major = 0, minor = 0;
};
inline constexpr KernelVersion kMinKernel{5, 4};
inline constexpr KernelVersion kMaxKernel{7, 3};
Expected<bool> check_supported_kernel(const std::string& banner);

// The steps of dentry walks read during one listing, so that the files of
// one directory read its ancestors once (a process can map thousands of
// files at the end of a chain of thousands of directories): (mount, dentry)
// -> where the walk goes next and the name read there. Kept for the span of
// one call only (a directory can be renamed or freed once the guest runs),
// at most kMaxSteps of them (further steps are read, not kept).
class DentryWalkCache {
public:
    struct Step {
        enum class Kind : uint8_t { Root, CrossMount, Up } kind = Kind::Root;
        uint64_t next_mount = 0;
        uint64_t next_dentry = 0;
        std::string name;  // Up: the dentry's name
    };
    static constexpr size_t kMaxSteps = 1u << 18;

    const Step* find(uint64_t mount, uint64_t dentry) const {
        auto it = steps_.find({mount, dentry});
        return it == steps_.end() ? nullptr : &it->second;
    }
    void add(uint64_t mount, uint64_t dentry, Step step) {
        if (steps_.size() < kMaxSteps) {
            steps_.emplace(std::pair{mount, dentry}, std::move(step));
        }
    }

private:
    struct KeyHash {
        size_t operator()(const std::pair<uint64_t, uint64_t>& k) const {
            return std::hash<uint64_t>()(k.first * 0x9e3779b97f4a7c15ull ^ k.second);
        }
    };
    std::unordered_map<std::pair<uint64_t, uint64_t>, Step, KeyHash> steps_;
};

class LinuxKernel {
public:
    static constexpr size_t kMaxListEntries = 1 << 16;

    explicit LinuxKernel(SymbolTable symbols) : symbols_(std::move(symbols)) {}

    const SymbolTable& symbols() const { return symbols_; }

    // Finds the kernel in memory (see locate_kernel) and keeps the result.
    Expected<bool> locate(PhysicalMemory& mem, uint64_t ram_size, PagingMode mode);
    void set_location(const KernelLocation& location, PagingMode mode = PagingMode::Long4);
    bool located() const { return location_.has_value(); }
    const KernelLocation& location() const { return *location_; }
    PagingMode mode() const { return mode_; }

    // The thread group leaders on init_task.tasks, in list order (init_task
    // itself, pid 0, is not one of them). `kpti` as for normalize_pgd.
    Expected<std::vector<Process>> processes(PhysicalMemory& mem, bool kpti) const;

    // The files mapped by the process whose (normalised) pgd is `pgd`, one
    // entry per file (lowest vm_start .. highest vm_end), sorted by base.
    Expected<std::vector<Module>> modules(PhysicalMemory& mem, uint64_t pgd, bool kpti) const;
    // The same for the task_struct at `task`.
    Expected<std::vector<Module>> task_modules(PhysicalMemory& mem, uint64_t task) const;
    // The same for the mm_struct at `mm`.
    Expected<std::vector<Module>> mm_modules(PhysicalMemory& mem, uint64_t mm) const;
    // The vm_area_struct addresses of the mm_struct at `mm`, in address
    // order: from its maple tree (6.1+) or its mmap list (up to 6.0; bounded
    // by kMaxListEntries, a revisited or out-of-order VMA is an error naming
    // it).
    Expected<std::vector<uint64_t>> mm_vmas(PhysicalMemory& mem, uint64_t mm) const;

    // Single structures, for event hooks that are handed a pointer.
    Expected<Task> task(PhysicalMemory& mem, uint64_t task, bool kpti) const;
    Expected<Vma> vma(PhysicalMemory& mem, uint64_t vma) const;
    // The top-level page table of the mm_struct at `mm`, normalised.
    Expected<uint64_t> mm_pgd(PhysicalMemory& mem, uint64_t mm, bool kpti) const;
    // The path of the file (struct file at `file`). `steps`, when given,
    // keeps the dentry-walk steps read (see DentryWalkCache).
    Expected<std::string> file_path(PhysicalMemory& mem, uint64_t file,
                                    DentryWalkCache* steps = nullptr) const;
    // The physical address of page `index` (file offset / 4096) of the file
    // (struct file at `file`) in the page cache; nullopt when that page is
    // not cached (page_cache.cpp). An error when the symbol table lacks the
    // page cache's types or the structures read are corrupt.
    Expected<std::optional<uint64_t>> file_page_address(PhysicalMemory& mem, uint64_t file,
                                                        uint64_t index) const;
    // The loaded module (struct module at `module`), as kernel_modules lists it.
    Expected<Module> kernel_module(PhysicalMemory& mem, uint64_t module) const;
    // The arguments of the process whose task_struct is at `task` (see
    // ExecArguments); at most kMaxArgBytes of arguments and of environment
    // are read. An error for a kernel thread (no mm) or unreadable memory.
    static constexpr uint64_t kMaxArgBytes = 128 * 1024;
    Expected<ExecArguments> exec_arguments(PhysicalMemory& mem, uint64_t task, bool kpti) const;
    // The thread CPU `cpu` (the kernel's CPU number) runs: its per-CPU
    // `current_task` (`pcpu_hot.current_task` on 6.2-6.14), read through
    // __per_cpu_offset[cpu]. An error when the table lacks them, `cpu` is
    // beyond the offsets or a pointer does not read.
    Expected<Thread> current_thread(PhysicalMemory& mem, unsigned cpu) const;
    // Where an i386 fast system call (sysenter, or syscall from 32-bit code)
    // of the thread CPU `cpu` runs returns: the kernel resumes it at its
    // vDSO's int80_landing_pad (mm->context.vdso plus the 32-bit image's
    // sym_int80_landing_pad), wherever the instruction was. An error when
    // the table lacks them, a kernel thread runs, or no vDSO is mapped.
    Expected<uint64_t> compat_landing_pad(PhysicalMemory& mem, unsigned cpu) const;
    // Whether the kernel runs with page-table isolation (KPTI): the
    // X86_FEATURE_PTI bit of boot_cpu_data.x86_capability, the bit the kernel
    // itself tests (set in setup_arch, long before the first user process;
    // the bit's number is the index of "pti" in x86_cap_flags). Then each
    // mm->pgd is the kernel half of an 8 KiB pair and user mode runs on
    // pgd | 0x1000 (see normalize_pgd).
    Expected<bool> kpti(PhysicalMemory& mem) const;
    // A NUL-terminated string of at most `max` bytes in kernel memory.
    Expected<std::string> kernel_string(PhysicalMemory& mem, uint64_t va, size_t max) const;
    // Size of task_struct.comm (TASK_COMM_LEN).
    size_t comm_size() const;

    // The kernel image ("vmlinux", _text .. _end) then each loaded module on
    // the `modules` list.
    Expected<std::vector<Module>> kernel_modules(PhysicalMemory& mem) const;

    // Every symbol of the symbol table at its run-time address: link
    // addresses in the kernel image's mapping (at or above
    // __START_KERNEL_map) get the virtual KASLR slide, others (per-CPU
    // offsets) are kept as they are. Built once per location.
    Expected<std::shared_ptr<const SymbolSet>> vmlinux_symbols() const;

    // The kallsyms of the loaded module whose struct module is at `module`
    // (module->kallsyms: symtab, num_symtab, strtab), at their run-time
    // addresses; defined, named symbols only (kernel_symbols.cpp). At most
    // 2^17 symbols and 16 MiB of names (an error beyond). Kept, failures
    // included, by the table's pointers and count: read once per module.
    Expected<std::shared_ptr<const SymbolSet>> module_kallsyms(PhysicalMemory& mem,
                                                               uint64_t module) const;

    // The path of the dentry at `dentry` on the mount whose struct vfsmount
    // is at `vfsmount` (0: do not cross mounts). A path longer than the
    // kernel's PATH_MAX (kMaxPathBytes; deeper directories exist, made with
    // relative names) is its last components that fit, after "/...". An
    // error for a cycle (a corrupt structure) or an unreadable part.
    static constexpr size_t kMaxPathBytes = 4096;
    Expected<std::string> dentry_path(PhysicalMemory& mem, uint64_t dentry, uint64_t vfsmount,
                                      DentryWalkCache* steps = nullptr) const;

    // The kernel's pointer size: 8, or 4 for an i386 kernel.
    unsigned pointer_bytes() const;
    // The lowest kernel address, the same in every address space: the
    // x86-64 kernel half (0xffff800000000000), or i386's PAGE_OFFSET (once
    // located; 0xc0000000 before).
    uint64_t kernel_space() const;
    // Symbols linked at or above this address move with the image (get the
    // virtual slide): __START_KERNEL_map on x86-64 (below it are the
    // zero-based per-CPU offsets), PAGE_OFFSET on i386.
    uint64_t image_link_base() const;

private:
    struct Layout;
    Expected<const Layout*> layout() const;
    // The layout, once the kernel has been located (every walk needs both).
    Expected<const Layout*> located_layout() const;

    SymbolTable symbols_;
    std::optional<KernelLocation> location_;
    PagingMode mode_ = PagingMode::Long4;
    mutable std::shared_ptr<const Layout> layout_;
    mutable std::shared_ptr<const SymbolSet> vmlinux_symbols_;
    // __per_cpu_offset[cpu] as read once per location (it does not change
    // after boot), for the first kCachedCpus CPUs; kUnknown until read.
    static constexpr size_t kCachedCpus = 64;
    static constexpr uint64_t kUnknown = ~0ull;
    using PerCpuOffsets = std::array<std::atomic<uint64_t>, kCachedCpus>;
    std::shared_ptr<PerCpuOffsets> per_cpu_offsets_ = fresh_offsets();
    static std::shared_ptr<PerCpuOffsets> fresh_offsets();
    // module_kallsyms' answers (kernel_symbols.cpp), per location.
    struct KallsymsCache;
    std::shared_ptr<KallsymsCache> kallsyms_cache_ = fresh_kallsyms_cache();
    static std::shared_ptr<KallsymsCache> fresh_kallsyms_cache();
};

}  // namespace pyrebox::vmi::linux_guest
