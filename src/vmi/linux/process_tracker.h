// Process and module events of a running Linux kernel, from hooks on the
// kernel functions that create, rename and reap tasks and that map and unmap
// files and load and free kernel modules.
//
// The tracker knows neither QEMU nor the callback machinery: the caller
// places an execution hook at each address hooks() gives, and when the guest
// reaches one calls on_hook() with the function's first six integer
// arguments (System V: rdi, rsi, rdx, rcx, r8, r9). The tracker reads what
// it needs from guest memory, keeps its tables and returns the events the
// hook produced, in order.
//
// Event semantics (docs/scripts.md says the same to script writers):
// - A process is a thread group with an address space. CREATEPROC when one
//   is created (fork/clone without CLONE_THREAD: wake_up_new_task) with its
//   parent's name, and again when it execs: an exec is REMOVEPROC of the old
//   (pid, pgd, name) followed by CREATEPROC of the new ones, at the moment
//   the kernel gives it its new name (__set_task_comm from setup_new_exec),
//   since PyREBox identifies a process by its address space and exec
//   replaces it. REMOVEPROC when the process leaves the task list
//   (release_task of the group leader: after its parent reaped it), which is
//   when get_process_list stops showing it.
// - Threads (CLONE_THREAD) and kernel threads (no mm) produce no events;
//   a kernel thread that execs a user program (the kernel starting /init or
//   a usermode helper) produces CREATEPROC.
// - A module is a file mapped in an address space. LOADMODULE when the
//   first mapping of a file appears in it (perf_event_mmap, called for every
//   new mapping), with that mapping's extent; REMOVEMODULE when an munmap
//   (__do_munmap / do_mas_munmap / do_vmi_munmap) is about to remove every mapping of the
//   file. A forked child's inherited modules are reported right after its
//   CREATEPROC (unless it shares its parent's address space). Modules of an
//   address space that dies with its process (exit, exec) are not reported
//   one by one: REMOVEPROC covers them.
// - Kernel modules (pgd 0): LOADMODULE at do_init_module (the .ko is in
//   memory, about to run its init), REMOVEMODULE at free_module.
// Processes and modules that exist when the tracker starts (seed) produce
// no events.
//
// Address spaces are keyed by their mm_struct's address, which the kernel
// reuses: a zombie's mm is freed at its exit (exit_mmap, long before
// release_task) and the next fork may get the same address. The tracker
// forgets an address space at exit_mmap, so a reused mm_struct is a new
// address space (its child gets its inherited LOADMODULEs, its mappings its
// own pid) and a zombie keeps only its pid, pgd and name for its REMOVEPROC.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/expected.h"
#include "vmi/linux/linux_kernel.h"

namespace pyrebox::vmi::linux_guest {

struct TrackerEvent {
    enum class Kind { CreateProc, RemoveProc, LoadModule, RemoveModule };
    Kind kind = Kind::CreateProc;
    uint64_t pid = 0;
    uint64_t pgd = 0;  // 0 for kernel modules
    std::string name;
    // Modules only.
    std::string fullname;
    uint64_t base = 0;
    uint64_t size = 0;
};

class ProcessTracker {
public:
    enum class Hook {
        NewTask,       // wake_up_new_task(struct task_struct *p)
        SetComm,       // __set_task_comm(struct task_struct *tsk, const char *buf, bool exec)
        ReleaseTask,   // release_task(struct task_struct *p)
        MapFile,       // perf_event_mmap(struct vm_area_struct *vma)
        Unmap,         // munmap of [start, start+len) in mm (argument positions vary)
        InitModule,    // do_init_module(struct module *mod)
        FreeModule,    // free_module(struct module *mod)
        ExitMmap,      // exit_mmap(struct mm_struct *mm): the last user of mm is gone
    };
    struct HookSite {
        Hook hook;
        std::string function;
        uint64_t addr;  // run-time (slid) address of the function's first instruction
    };

    explicit ProcessTracker(const LinuxKernel& kernel) : kernel_(kernel) {}

    // Where to hook, for the located kernel. An error names every function
    // the symbol table lacks (the kernel is then not supported).
    // Also settles which unmap function (and argument positions) is used.
    Expected<std::vector<HookSite>> hooks();

    // Takes the processes and modules alive now as known (no events).
    Expected<bool> seed(PhysicalMemory& mem, bool kpti);

    // What one hook gave: its events, and what could not be read. The
    // events are delivered even then: a process whose mappings do not read
    // is still created, a file whose path does not read is still loaded
    // (under unreadable_file_name()). Where nothing could be read (the task
    // itself), there are no events and the tables are as they were.
    struct HookResult {
        std::vector<TrackerEvent> events;
        std::string problem;  // empty: everything read
        bool ok() const { return problem.empty(); }
        const std::string& error() const { return problem; }
    };
    HookResult on_hook(Hook hook, const uint64_t (&args)[6], PhysicalMemory& mem, bool kpti);

    // For tests and the console: processes currently tracked.
    size_t process_count() const;

private:
    struct Proc {
        uint64_t pgd = 0;
        uint64_t mm = 0;  // 0 once its address space is gone (a zombie)
        std::string name;
    };
    struct AddressSpace {
        uint64_t pgd = 0;
        std::map<std::string, Module> modules;  // by full path
        int users = 0;                          // tracked processes using it
    };

    using Events = std::vector<TrackerEvent>;
    Expected<bool> new_task(uint64_t task, PhysicalMemory& mem, bool kpti, Events& out);
    Expected<bool> set_comm(uint64_t task, uint64_t buf, bool exec, PhysicalMemory& mem,
                            bool kpti, Events& out);
    Expected<bool> release_task(uint64_t task, PhysicalMemory& mem, bool kpti, Events& out);
    Expected<bool> map_file(uint64_t vma, PhysicalMemory& mem, Events& out);
    Expected<bool> unmap(uint64_t mm, uint64_t start, uint64_t len, PhysicalMemory& mem,
                         Events& out);
    Expected<bool> kernel_module(uint64_t module, bool loaded, PhysicalMemory& mem, Events& out);
    void exit_mmap(uint64_t mm);

    void add_process(uint64_t pid, const Proc& proc);
    void drop_process(uint64_t pid);
    uint64_t pid_of_mm(uint64_t mm) const;

    const LinuxKernel& kernel_;
    // Which argument of the unmap function holds mm, start and len.
    int unmap_mm_arg_ = 1, unmap_start_arg_ = 2, unmap_len_arg_ = 3;

    mutable std::mutex lock_;
    std::map<uint64_t, Proc> procs_;          // by pid (tgid)
    std::map<uint64_t, AddressSpace> spaces_;  // by mm_struct address
    std::map<uint64_t, Module> kernel_modules_;  // by struct module address
};

}  // namespace pyrebox::vmi::linux_guest
