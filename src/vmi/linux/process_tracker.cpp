#include "vmi/linux/process_tracker.h"

#include <algorithm>

#include "base/hex.h"

namespace pyrebox::vmi::linux_guest {

namespace {

std::string basename(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The function that unmaps a range, per kernel generation, with the
// argument positions of mm, start and len. The first one the kernel has
// wins: the older names still exist as wrappers in newer kernels.
struct UnmapFunction {
    const char* name;
    int mm, start, len;
};
constexpr UnmapFunction kUnmapFunctions[] = {
    {"do_vmi_munmap", 1, 2, 3},  // 6.2+: (vmi, mm, start, len, uf, unlock)
    {"do_mas_munmap", 1, 2, 3},  // 6.1: (mas, mm, start, len, uf, downgrade)
    // 4.20 .. 6.0: (mm, start, len, uf, downgrade), what munmap(2) calls;
    // do_munmap is a wrapper that munmap(2) does not go through.
    {"__do_munmap", 0, 1, 2},
    {"do_munmap", 0, 1, 2},      // older: (mm, start, len, uf)
};

constexpr uint64_t kPageMask = 4095;

TrackerEvent process_event(TrackerEvent::Kind kind, uint64_t pid, uint64_t pgd,
                           const std::string& name) {
    TrackerEvent e;
    e.kind = kind;
    e.pid = pid;
    e.pgd = pgd;
    e.name = name;
    return e;
}

}  // namespace

Expected<std::vector<ProcessTracker::HookSite>> ProcessTracker::hooks() {
    if (!kernel_.located()) {
        return Error{"the Linux kernel has not been located in guest memory yet"};
    }
    const uint64_t slide = kernel_.location().virt_slide;
    const SymbolTable& symbols = kernel_.symbols();
    std::vector<HookSite> sites;
    std::vector<std::string> missing;
    auto want = [&](Hook hook, const std::string& name, bool required) {
        if (auto addr = symbols.symbol_address(name)) {
            sites.push_back({hook, name, *addr + slide});
        } else if (required) {
            missing.push_back(name);
        }
    };
    want(Hook::NewTask, "wake_up_new_task", true);
    want(Hook::SetComm, "__set_task_comm", true);
    want(Hook::ReleaseTask, "release_task", true);
    want(Hook::MapFile, "perf_event_mmap", true);
    bool unmap_found = false;
    for (const auto& f : kUnmapFunctions) {
        if (auto addr = symbols.symbol_address(f.name)) {
            sites.push_back({Hook::Unmap, f.name, *addr + slide});
            unmap_mm_arg_ = f.mm;
            unmap_start_arg_ = f.start;
            unmap_len_arg_ = f.len;
            unmap_found = true;
            break;
        }
    }
    if (!unmap_found) {
        missing.push_back("do_vmi_munmap/do_mas_munmap/__do_munmap/do_munmap");
    }
    // Kernel module events need both; without them the rest still works.
    if (symbols.symbol_address("do_init_module") && symbols.symbol_address("free_module")) {
        want(Hook::InitModule, "do_init_module", true);
        want(Hook::FreeModule, "free_module", true);
    }
    // Without it (never seen: every kernel since 2.6 has it) a reused
    // mm_struct looks like a vfork child's shared address space.
    want(Hook::ExitMmap, "exit_mmap", false);
    if (!missing.empty()) {
        std::string list;
        for (const auto& name : missing) {
            list += (list.empty() ? "" : ", ") + name;
        }
        return Error{"the kernel's symbol table lacks functions that process events hook: " +
                     list};
    }
    return sites;
}

Expected<bool> ProcessTracker::seed(PhysicalMemory& mem, bool kpti) {
    auto procs = kernel_.processes(mem, kpti);
    if (!procs) {
        return Error{procs.error()};
    }
    std::map<uint64_t, Proc> new_procs;
    std::map<uint64_t, AddressSpace> new_spaces;
    for (const auto& p : *procs) {
        if (p.mm == 0) {
            continue;
        }
        new_procs[p.pid] = Proc{p.pgd, p.mm, p.name};
        auto [it, fresh] = new_spaces.try_emplace(p.mm);
        it->second.users++;
        if (fresh) {
            it->second.pgd = p.pgd;
            // A process whose mappings do not read starts with none known
            // (one bad address space does not stop the tracking of all).
            if (auto modules = kernel_.mm_modules(mem, p.mm)) {
                for (auto& m : *modules) {
                    it->second.modules[m.fullname] = m;
                }
            }
        }
    }
    std::map<uint64_t, Module> new_kernel_modules;
    if (auto kmods = kernel_.kernel_modules(mem)) {
        for (size_t i = 1; i < kmods->size(); ++i) {  // [0] is the kernel itself
            if ((*kmods)[i].partial.empty()) {
                new_kernel_modules[(*kmods)[i].base] = (*kmods)[i];
            }
        }
    }
    std::lock_guard<std::mutex> guard(lock_);
    procs_ = std::move(new_procs);
    spaces_ = std::move(new_spaces);
    kernel_modules_ = std::move(new_kernel_modules);
    return true;
}

size_t ProcessTracker::process_count() const {
    std::lock_guard<std::mutex> guard(lock_);
    return procs_.size();
}

ProcessTracker::HookResult ProcessTracker::on_hook(Hook hook, const uint64_t (&args)[6],
                                                   PhysicalMemory& mem, bool kpti) {
    std::lock_guard<std::mutex> guard(lock_);
    HookResult result;
    Events& out = result.events;
    Expected<bool> done = true;
    switch (hook) {
        case Hook::NewTask: done = new_task(args[0], mem, kpti, out); break;
        case Hook::SetComm: done = set_comm(args[0], args[1], (args[2] & 0xff) != 0, mem, kpti, out); break;
        case Hook::ReleaseTask: done = release_task(args[0], mem, kpti, out); break;
        case Hook::MapFile: done = map_file(args[0], mem, out); break;
        case Hook::Unmap:
            done = unmap(args[unmap_mm_arg_], args[unmap_start_arg_], args[unmap_len_arg_], mem, out);
            break;
        case Hook::InitModule: done = kernel_module(args[0], true, mem, out); break;
        case Hook::FreeModule: done = kernel_module(args[0], false, mem, out); break;
        case Hook::ExitMmap: exit_mmap(args[0]); break;
    }
    if (!done) {
        result.problem = done.error();
    }
    return result;
}

void ProcessTracker::add_process(uint64_t pid, const Proc& proc) {
    procs_[pid] = proc;
    AddressSpace& space = spaces_[proc.mm];
    if (space.users++ == 0) {
        space.pgd = proc.pgd;
        space.modules.clear();
    }
}

void ProcessTracker::drop_process(uint64_t pid) {
    auto it = procs_.find(pid);
    if (it == procs_.end()) {
        return;
    }
    auto space = spaces_.find(it->second.mm);
    if (space != spaces_.end() && --space->second.users <= 0) {
        spaces_.erase(space);
    }
    procs_.erase(it);
}

void ProcessTracker::exit_mmap(uint64_t mm) {
    if (spaces_.erase(mm) == 0) {
        return;  // not a tracked address space (or mm 0)
    }
    for (auto& [pid, proc] : procs_) {
        if (proc.mm == mm) {
            proc.mm = 0;
        }
    }
}

uint64_t ProcessTracker::pid_of_mm(uint64_t mm) const {
    if (mm == 0) {
        return 0;
    }
    for (const auto& [pid, proc] : procs_) {
        if (proc.mm == mm) {
            return pid;
        }
    }
    return 0;
}

Expected<bool> ProcessTracker::new_task(uint64_t task, PhysicalMemory& mem, bool kpti,
                                        Events& out) {
    auto t = kernel_.task(mem, task, kpti);
    if (!t) {
        return Error{"a new task: " + t.error()};
    }
    if (t->pid != t->tgid || t->mm == 0 || procs_.count(t->tgid) != 0) {
        return true;  // a thread, a kernel thread, or already known
    }
    const bool shared = spaces_.count(t->mm) != 0;  // CLONE_VM without CLONE_THREAD (vfork)
    add_process(t->tgid, Proc{t->pgd, t->mm, t->name});
    out.push_back(process_event(TrackerEvent::Kind::CreateProc, t->tgid, t->pgd, t->name));
    if (shared) {
        return true;
    }
    // fork copied the parent's mappings before waking the child up. If
    // they do not read, the process is still created (with none known).
    auto modules = kernel_.mm_modules(mem, t->mm);
    if (!modules) {
        return Error{"the modules of new process " + std::to_string(t->tgid) + ": " +
                     modules.error()};
    }
    AddressSpace& space = spaces_[t->mm];
    for (const auto& m : *modules) {
        space.modules[m.fullname] = m;
        out.push_back({TrackerEvent::Kind::LoadModule, t->tgid, t->pgd, m.name, m.fullname,
                       m.base, m.size});
    }
    return true;
}

Expected<bool> ProcessTracker::set_comm(uint64_t task, uint64_t buf, bool exec,
                                        PhysicalMemory& mem, bool kpti, Events& out) {
    auto t = kernel_.task(mem, task, kpti);
    if (!t) {
        return Error{"a task being renamed: " + t.error()};
    }
    const size_t comm_len = kernel_.comm_size() > 0 ? kernel_.comm_size() - 1 : 15;
    auto name = kernel_.kernel_string(mem, buf, comm_len);
    if (!name) {
        return Error{"the new name of task " + std::to_string(t->pid) + ": " + name.error()};
    }
    if (!exec) {
        auto it = procs_.find(t->tgid);
        if (t->pid == t->tgid && it != procs_.end()) {
            it->second.name = *name;  // prctl(PR_SET_NAME) etc.: no event
        }
        return true;
    }
    if (t->mm == 0) {
        return true;
    }
    const uint64_t pid = t->tgid;
    if (auto old = procs_.find(pid); old != procs_.end()) {
        out.push_back(process_event(TrackerEvent::Kind::RemoveProc, pid, old->second.pgd, old->second.name));
        drop_process(pid);
    }
    if (auto stale = spaces_.find(t->mm); stale != spaces_.end()) {
        spaces_.erase(stale);  // exec's mm is new: whatever was here is gone
    }
    add_process(pid, Proc{t->pgd, t->mm, *name});
    out.push_back(process_event(TrackerEvent::Kind::CreateProc, pid, t->pgd, *name));
    return true;
}

Expected<bool> ProcessTracker::release_task(uint64_t task, PhysicalMemory& mem, bool kpti,
                                            Events& out) {
    auto t = kernel_.task(mem, task, kpti);
    if (!t) {
        return Error{"a task being released: " + t.error()};
    }
    if (t->pid != t->tgid) {
        return true;  // a thread
    }
    auto it = procs_.find(t->tgid);
    if (it == procs_.end()) {
        return true;
    }
    out.push_back(process_event(TrackerEvent::Kind::RemoveProc, t->tgid, it->second.pgd, it->second.name));
    drop_process(t->tgid);
    return true;
}

Expected<bool> ProcessTracker::map_file(uint64_t vma_addr, PhysicalMemory& mem, Events& out) {
    auto v = kernel_.vma(mem, vma_addr);
    if (!v) {
        return Error{"a new mapping: " + v.error()};
    }
    if (v->file == 0) {
        return true;
    }
    auto space = spaces_.find(v->mm);
    if (space == spaces_.end()) {
        return true;  // not a tracked process's address space
    }
    // A path that does not read is still a LOADMODULE, under a name that
    // says so (the same name the module lists give it).
    auto read_path = kernel_.file_path(mem, v->file);
    const std::string path = read_path ? *read_path : unreadable_file_name(v->file);
    auto& modules = space->second.modules;
    if (auto known = modules.find(path); known != modules.end()) {
        Module& m = known->second;
        const uint64_t top = std::max(m.base + m.size, v->end);
        m.base = std::min(m.base, v->start);
        m.size = top - m.base;
        return true;
    }
    Module m;
    m.name = read_path ? basename(path) : path;
    m.fullname = path;
    m.base = v->start;
    m.size = v->end - v->start;
    modules[path] = m;
    out.push_back({TrackerEvent::Kind::LoadModule, pid_of_mm(v->mm), space->second.pgd, m.name,
                   m.fullname, m.base, m.size});
    if (!read_path) {
        return Error{"the path of the file mapped at " + hex(v->start) + ": " + read_path.error()};
    }
    return true;
}

Expected<bool> ProcessTracker::unmap(uint64_t mm, uint64_t start, uint64_t len,
                                     PhysicalMemory& mem, Events& out) {
    auto space = spaces_.find(mm);
    if (space == spaces_.end() || len == 0) {
        return true;
    }
    const uint64_t end = start + ((len + kPageMask) & ~kPageMask);
    auto& modules = space->second.modules;
    const bool touches = std::any_of(modules.begin(), modules.end(), [&](const auto& entry) {
        const Module& m = entry.second;
        return m.base < end && start < m.base + m.size;
    });
    if (!touches) {
        return true;
    }
    // The recorded extents may be stale (partial unmaps): look at the
    // mappings as they are. A file all of whose mappings lie inside the
    // range (its extent does) is about to disappear.
    auto current = kernel_.mm_modules(mem, mm);
    if (!current) {
        return Error{"the modules of an address space being unmapped: " + current.error()};
    }
    const uint64_t pid = pid_of_mm(mm);
    for (const auto& m : *current) {
        auto known = modules.find(m.fullname);
        if (known == modules.end()) {
            continue;
        }
        if (start <= m.base && m.base + m.size <= end) {
            out.push_back({TrackerEvent::Kind::RemoveModule, pid, space->second.pgd, m.name,
                           m.fullname, m.base, m.size});
            modules.erase(known);
        } else {
            known->second = m;
        }
    }
    return true;
}

Expected<bool> ProcessTracker::kernel_module(uint64_t module, bool loaded, PhysicalMemory& mem,
                                             Events& out) {
    auto m = kernel_.kernel_module(mem, module);
    if (!m) {
        return Error{std::string(loaded ? "a kernel module being loaded: "
                                        : "a kernel module being freed: ") +
                     m.error()};
    }
    if (loaded) {
        kernel_modules_[m->base] = *m;
        out.push_back({TrackerEvent::Kind::LoadModule, 0, 0, m->name, m->fullname, m->base,
                       m->size});
        return true;
    }
    auto known = kernel_modules_.find(m->base);
    if (known == kernel_modules_.end()) {
        return true;
    }
    out.push_back({TrackerEvent::Kind::RemoveModule, 0, 0, known->second.name,
                   known->second.fullname, known->second.base, known->second.size});
    kernel_modules_.erase(known);
    return true;
}

}  // namespace pyrebox::vmi::linux_guest
