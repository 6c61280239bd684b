#include "vmi/linux/linux_kernel.h"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_set>

#include "base/hex.h"
#include "vmi/linux/maple_tree.h"

namespace pyrebox::vmi::linux_guest {

namespace {

// An integer field: where it is and how wide.
struct Field {
    uint64_t offset = 0;
    size_t size = 8;
};

// Collects offsets from the ISF; the first missing one becomes the error.
class LayoutBuilder {
public:
    explicit LayoutBuilder(const SymbolTable& s) : s_(s) {}

    uint64_t offset(const std::string& type, const std::string& member) {
        if (auto off = s_.member_offset(type, member)) {
            return *off;
        }
        fail(type, member);
        return 0;
    }

    // A member holding an integer or a pointer.
    Field field(const std::string& type, const std::string& member) {
        auto m = s_.member(type, member);
        if (!m) {
            fail(type, member);
            return {};
        }
        Field f{m->offset, 8};
        if (m->type.kind == "pointer") {
            f.size = s_.pointer_size().value_or(8);
        } else if (m->type.kind == "base" || m->type.kind == "enum") {
            if (auto size = s_.type_size(m->type.name)) {
                f.size = *size;
            }
        }
        if (f.size == 0 || f.size > 8) {
            set_error("the Linux symbol table gives " + type + "." + member + " a size of " +
                      std::to_string(f.size) + " bytes, not an integer or pointer");
        }
        return f;
    }

    uint64_t symbol(const std::string& name) {
        if (auto a = s_.symbol_address(name)) {
            return *a;
        }
        set_error("the Linux symbol table has no symbol '" + name + "'");
        return 0;
    }

    void set_error(std::string message) {
        if (error_.empty()) {
            error_ = std::move(message);
        }
    }
    const std::string& error() const { return error_; }

private:
    void fail(const std::string& type, const std::string& member) {
        set_error(s_.has_user_type(type)
                      ? "the Linux symbol table has no member '" + member + "' in struct " + type
                      : "the Linux symbol table has no type 'struct " + type + "'");
    }

    const SymbolTable& s_;
    std::string error_;
};

// Kernel virtual memory, read through the kernel's page tables.
struct Reader {
    PhysicalMemory& mem;
    PagingMode mode;
    uint64_t pgd;
    unsigned ptr = 8;  // the kernel's pointer size: 8, or 4 on i386

    Expected<uint64_t> pointer(uint64_t va, const char* what) const { return uint(va, ptr, what); }

    Expected<uint64_t> uint(uint64_t va, size_t size, const char* what) const {
        uint64_t value = 0;
        auto r = read_virtual(mem, mode, pgd, va, &value, size);
        if (!r) {
            return Error{std::string("cannot read ") + what + ": " + r.error()};
        }
        if (size < 8) {
            value &= (1ull << (8 * size)) - 1;
        }
        return value;
    }

    Expected<uint64_t> field(uint64_t base, const Field& f, const char* what) const {
        return uint(base + f.offset, f.size, what);
    }

    // A NUL-terminated string of at most `max` bytes, read a page at a time
    // so that a short string near the end of a mapping reads.
    Expected<std::string> cstring(uint64_t va, size_t max, const char* what) const {
        std::string out;
        while (out.size() < max) {
            const size_t chunk =
                std::min<uint64_t>(max - out.size(), 4096 - ((va + out.size()) & 4095));
            std::string buf(chunk, '\0');
            auto r = read_virtual(mem, mode, pgd, va + out.size(), buf.data(), chunk);
            if (!r) {
                return Error{std::string("cannot read ") + what + ": " + r.error()};
            }
            const auto nul = buf.find('\0');
            if (nul != std::string::npos) {
                return out + buf.substr(0, nul);
            }
            out += buf;
        }
        return out;
    }
};

// Addresses a 32-bit kernel computes wrap at 4 GiB.
uint64_t address_mask(unsigned ptr) { return ptr == 4 ? 0xffffffffull : ~0ull; }

}  // namespace

unsigned LinuxKernel::pointer_bytes() const {
    return symbols_.pointer_size().value_or(8) == 4 ? 4 : 8;
}

uint64_t LinuxKernel::kernel_space() const {
    if (pointer_bytes() == 8) {
        return 0xffff800000000000ull;
    }
    return location_ ? location_->page_offset_base : 0xc0000000ull;
}

uint64_t LinuxKernel::image_link_base() const {
    return pointer_bytes() == 8 ? kStartKernelMap : kernel_space();
}

std::string unreadable_file_name(uint64_t kaddr) { return "[unreadable " + hex(kaddr) + "]"; }

namespace {

std::string basename(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

struct LinuxKernel::Layout {
    unsigned ptr = 8;  // pointer size: 8, or 4 for an i386 kernel
    uint64_t init_task = 0, modules_head = 0, text = 0, end = 0;
    uint64_t task_tasks = 0;
    Field task_pid, task_tgid, task_real_parent, task_mm, task_comm;
    size_t comm_size = 16;
    Field mm_pgd;
    // A process's VMAs: the maple tree mm->mm_mt (6.1+), or the list from
    // mm->mmap through vm_area_struct.vm_next (up to 6.0).
    bool vma_list = false;
    uint64_t mm_mt = 0;
    MapleLayout maple;
    Field mm_mmap, vma_next;
    Field vma_start, vma_end, vma_file, vma_mm;
    uint64_t file_path = 0;
    Field path_dentry, path_mnt;
    Field dentry_parent;
    uint64_t dentry_name = 0;
    Field qstr_name;
    // Crossing mount points: optional (not every ISF describes struct mount).
    bool has_mounts = false;
    Field vfsmount_root, mount_parent, mount_mountpoint;
    uint64_t mount_mnt = 0;
    // Loaded modules.
    uint64_t module_list = 0, module_name = 0;
    size_t module_name_size = 56;
    // Up to 6.3: core_layout and init_layout (struct module_layout). 6.4+:
    // mem[MOD_MEM_NUM_TYPES] (struct module_memory), one region per type.
    struct Region {
        std::string name;
        uint64_t offset = 0;  // of its base/size pair in struct module
        bool init = false;    // freed once the module's init has run
    };
    std::vector<Region> module_regions;
    size_t module_text = 0;  // the region whose base /proc/modules gives
    Field layout_base, layout_size;
    std::string modules_error;  // why kernel_modules() cannot list .ko modules
    // File identity (optional: Module.inode stays 0 without it).
    bool has_identity = false, has_mtime = false;
    Field file_inode, inode_ino, inode_sb, inode_size, sb_dev, mtime_sec, mtime_nsec, vma_pgoff;
    // The current task (optional: current_thread() says why it is absent).
    // `current_task` is a per-CPU offset (below __START_KERNEL_map, kept as
    // it is) or, on kernels whose per-CPU area is not zero-based, a link
    // address that gets the slide; __per_cpu_offset is an array of NR_CPUS
    // offsets.
    uint64_t current_task = 0, per_cpu_offset = 0, nr_cpus = 0;
    // The process's arguments (optional: exec_arguments() says why absent).
    bool has_args = false;
    Field mm_arg_start, mm_arg_end, mm_env_start, mm_env_end;
    // Where i386 fast system calls return (optional: compat_landing_pad()
    // says why absent): mm->context.vdso, the 32-bit vDSO image's
    // description (vdso_image_32, 7.x: vdso32_image) and its
    // sym_int80_landing_pad.
    bool has_landing_pad = false;
    Field mm_vdso;
    uint64_t vdso_image32 = 0;
    Field image_landing_pad;
};

Expected<const LinuxKernel::Layout*> LinuxKernel::layout() const {
    if (layout_) {
        return layout_.get();
    }
    auto l = std::make_shared<Layout>();
    LayoutBuilder b(symbols_);
    const size_t pointer = symbols_.pointer_size().value_or(8);
    if (pointer != 8 && pointer != 4) {
        return Error{"the Linux symbol table gives pointers " + std::to_string(pointer) +
                     " bytes; only x86-64 (8) and i386 (4) kernels are supported"};
    }
    l->ptr = static_cast<unsigned>(pointer);
    l->init_task = b.symbol("init_task");
    l->text = b.symbol("_text");
    l->end = b.symbol("_end");
    l->task_tasks = b.offset("task_struct", "tasks");
    l->task_pid = b.field("task_struct", "pid");
    l->task_tgid = b.field("task_struct", "tgid");
    l->task_real_parent = b.field("task_struct", "real_parent");
    l->task_mm = b.field("task_struct", "mm");
    l->task_comm.offset = b.offset("task_struct", "comm");
    if (auto comm = symbols_.member("task_struct", "comm"); comm && comm->type.count > 0) {
        l->comm_size = comm->type.count;
    }
    l->mm_pgd = b.field("mm_struct", "pgd");
    if (symbols_.member("mm_struct", "arg_start") && symbols_.member("mm_struct", "env_end")) {
        l->has_args = true;
        l->mm_arg_start = b.field("mm_struct", "arg_start");
        l->mm_arg_end = b.field("mm_struct", "arg_end");
        l->mm_env_start = b.field("mm_struct", "env_start");
        l->mm_env_end = b.field("mm_struct", "env_end");
    }
    if (auto context = symbols_.member("mm_struct", "context");
        context && context->type.kind == "struct") {
        auto vdso = symbols_.member(context->type.name, "vdso");
        auto image = symbols_.symbol_address("vdso_image_32");
        if (!image) {
            image = symbols_.symbol_address("vdso32_image");
        }
        if (vdso && image && symbols_.member("vdso_image", "sym_int80_landing_pad")) {
            l->has_landing_pad = true;
            l->mm_vdso = b.field("mm_struct", "context");
            l->mm_vdso.offset += vdso->offset;
            l->mm_vdso.size = symbols_.pointer_size().value_or(8);
            l->vdso_image32 = *image;
            l->image_landing_pad = b.field("vdso_image", "sym_int80_landing_pad");
        }
    }
    if (auto offsets = symbols_.symbol_address("__per_cpu_offset")) {
        l->per_cpu_offset = *offsets;
        const auto type = symbols_.symbol_type("__per_cpu_offset");
        l->nr_cpus = type && type->kind == "array" ? type->count : 0;
    }
    if (auto current = symbols_.symbol_address("current_task")) {
        l->current_task = *current;
    } else if (auto hot = symbols_.symbol_address("pcpu_hot")) {
        l->current_task = *hot;  // struct pcpu_hot: current_task is its first member
    }
    l->vma_list = !symbols_.member("mm_struct", "mm_mt") && symbols_.member("mm_struct", "mmap");
    if (l->vma_list) {
        l->mm_mmap = b.field("mm_struct", "mmap");
        l->vma_next = b.field("vm_area_struct", "vm_next");
    } else {
        l->mm_mt = b.offset("mm_struct", "mm_mt");
    }
    l->vma_start = b.field("vm_area_struct", "vm_start");
    l->vma_end = b.field("vm_area_struct", "vm_end");
    l->vma_file = b.field("vm_area_struct", "vm_file");
    l->vma_mm = b.field("vm_area_struct", "vm_mm");
    l->file_path = b.offset("file", "f_path");
    l->path_dentry = b.field("path", "dentry");
    l->path_mnt = b.field("path", "mnt");
    l->dentry_parent = b.field("dentry", "d_parent");
    l->dentry_name = b.offset("dentry", "d_name");
    l->qstr_name = b.field("qstr", "name");
    if (!b.error().empty()) {
        return Error{b.error()};
    }
    if (!l->vma_list) {
        auto maple = MapleLayout::from_symbols(symbols_);
        if (!maple) {
            return Error{maple.error()};
        }
        l->maple = *maple;
    }

    LayoutBuilder mounts(symbols_);
    l->vfsmount_root = mounts.field("vfsmount", "mnt_root");
    l->mount_parent = mounts.field("mount", "mnt_parent");
    l->mount_mountpoint = mounts.field("mount", "mnt_mountpoint");
    l->mount_mnt = mounts.offset("mount", "mnt");
    l->has_mounts = mounts.error().empty();

    LayoutBuilder mods(symbols_);
    l->modules_head = mods.symbol("modules");
    l->module_list = mods.offset("module", "list");
    l->module_name = mods.offset("module", "name");
    if (auto name = symbols_.member("module", "name"); name && name->type.count > 0) {
        l->module_name_size = name->type.count;
    }
    if (symbols_.member("module", "core_layout")) {
        l->module_regions = {{"core", mods.offset("module", "core_layout"), false},
                             {"init", mods.offset("module", "init_layout"), true}};
        l->layout_base = mods.field("module_layout", "base");
        l->layout_size = mods.field("module_layout", "size");
    } else if (auto mem = symbols_.member("module", "mem")) {
        l->layout_base = mods.field("module_memory", "base");
        l->layout_size = mods.field("module_memory", "size");
        const auto element = symbols_.type_size("module_memory");
        if (mem->type.kind != "array" || mem->type.count == 0 || mem->type.count > 64 ||
            !element) {
            mods.set_error("the Linux symbol table's module.mem is not an array of "
                           "struct module_memory");
        } else {
            // Region names from enum mod_mem_type (MOD_TEXT -> "text").
            std::vector<std::string> names(mem->type.count);
            for (size_t i = 0; i < names.size(); ++i) {
                names[i] = "mem[" + std::to_string(i) + "]";
            }
            for (const char* constant : {"MOD_TEXT", "MOD_DATA", "MOD_RODATA", "MOD_RO_AFTER_INIT",
                                         "MOD_INIT_TEXT", "MOD_INIT_DATA", "MOD_INIT_RODATA"}) {
                auto value = symbols_.enum_value("mod_mem_type", constant);
                if (value && *value >= 0 && static_cast<uint64_t>(*value) < names.size()) {
                    std::string name = constant + 4;
                    for (auto& c : name) {
                        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                    }
                    names[static_cast<size_t>(*value)] = name;
                }
            }
            for (size_t i = 0; i < names.size(); ++i) {
                l->module_regions.push_back({names[i], mem->offset + i * *element,
                                             names[i].rfind("init_", 0) == 0});
            }
            if (auto text = symbols_.enum_value("mod_mem_type", "MOD_TEXT");
                text && *text >= 0 && static_cast<uint64_t>(*text) < names.size()) {
                l->module_text = static_cast<size_t>(*text);
            }
        }
    } else {
        mods.set_error("the Linux symbol table has neither module.core_layout nor module.mem");
    }
    l->modules_error = mods.error();

    LayoutBuilder ident(symbols_);
    l->file_inode = ident.field("file", "f_inode");
    l->inode_ino = ident.field("inode", "i_ino");
    l->inode_sb = ident.field("inode", "i_sb");
    l->inode_size = ident.field("inode", "i_size");
    l->sb_dev = ident.field("super_block", "s_dev");
    l->vma_pgoff = ident.field("vm_area_struct", "vm_pgoff");
    l->has_identity = ident.error().empty();
    // i_mtime is a timespec64 up to 6.5, then __i_mtime, then i_mtime_sec/_nsec.
    LayoutBuilder mtime(symbols_);
    for (const char* name : {"i_mtime", "__i_mtime"}) {
        if (symbols_.member("inode", name)) {
            const uint64_t at = mtime.offset("inode", name);
            l->mtime_sec = mtime.field("timespec64", "tv_sec");
            l->mtime_nsec = mtime.field("timespec64", "tv_nsec");
            l->mtime_sec.offset += at;
            l->mtime_nsec.offset += at;
            l->has_mtime = mtime.error().empty();
            break;
        }
    }
    if (!l->has_mtime && symbols_.member("inode", "i_mtime_sec")) {
        LayoutBuilder split(symbols_);
        l->mtime_sec = split.field("inode", "i_mtime_sec");
        l->mtime_nsec = split.field("inode", "i_mtime_nsec");
        l->has_mtime = split.error().empty();
    }
    layout_ = l;
    return layout_.get();
}

Expected<bool> LinuxKernel::locate(PhysicalMemory& mem, uint64_t ram_size, PagingMode mode) {
    auto found = locate_kernel(symbols_, mem, ram_size, mode);
    if (!found) {
        return Error{found.error()};
    }
    set_location(*found, mode);
    return true;
}

void LinuxKernel::set_location(const KernelLocation& location, PagingMode mode) {
    location_ = location;
    mode_ = mode;
    vmlinux_symbols_.reset();
    per_cpu_offsets_ = fresh_offsets();
    kallsyms_cache_ = fresh_kallsyms_cache();
}

std::shared_ptr<LinuxKernel::PerCpuOffsets> LinuxKernel::fresh_offsets() {
    auto offsets = std::make_shared<PerCpuOffsets>();
    for (auto& o : *offsets) {
        o.store(kUnknown, std::memory_order_relaxed);
    }
    return offsets;
}

Expected<const LinuxKernel::Layout*> LinuxKernel::located_layout() const {
    if (!location_) {
        return Error{"the Linux kernel has not been located in guest memory yet"};
    }
    return layout();
}

namespace {

// Calls `fn(entry)` for each entry of the circular doubly linked list whose
// head is at `head` (not the head itself; next at 0, prev one pointer on), in list
// order. `fn` returns false to stop early.
//
// A break going forward (a NULL or unreadable next pointer, an entry that
// comes back) does not end the walk: the rest of the list is taken from the
// head backwards (prev pointers) down to what was seen, and given to `fn` in
// list order (a hostile guest can corrupt one link; the other entries are
// still there). When the backward walk breaks too, entries between the two
// breaks may be missing: `broken(reason)` says so. Errors: an unreadable
// head, more than kMaxListEntries entries, or `fn`'s error.
template <typename Fn, typename Broken>
Expected<bool> walk_list(const Reader& r, uint64_t head, const std::string& name, Fn&& fn,
                         Broken&& broken) {
    std::unordered_set<uint64_t> seen;
    auto next = r.pointer(head, ("the head of " + name).c_str());
    if (!next) {
        return Error{next.error()};
    }
    std::string why;
    uint64_t entry = *next;
    while (entry != head) {
        if (entry == 0) {
            why = "a NULL next pointer after " + std::to_string(seen.size()) + " entries";
            break;
        }
        if (!seen.insert(entry).second) {
            why = "entry " + hex(entry) + " comes back after " + std::to_string(seen.size()) +
                  " entries without reaching the head";
            break;
        }
        if (seen.size() > LinuxKernel::kMaxListEntries) {
            return Error{name + " has more than " + std::to_string(LinuxKernel::kMaxListEntries) +
                         " entries: giving up"};
        }
        auto keep = fn(entry);
        if (!keep) {
            return Error{keep.error()};
        }
        if (!*keep) {
            return true;
        }
        auto n = r.pointer(entry, (name + " entry " + hex(entry)).c_str());
        if (!n) {
            why = n.error();
            break;
        }
        entry = *n;
    }
    if (why.empty()) {
        return true;
    }
    // Backwards from the head, to the entries seen going forward.
    std::vector<uint64_t> rest;
    bool met = false;
    auto prev = r.pointer(head + r.ptr, ("the head of " + name).c_str());
    std::string back_why = prev ? "" : prev.error();
    for (entry = prev ? *prev : 0; prev;) {
        if (entry == head || seen.count(entry) != 0) {
            met = true;
            break;
        }
        if (entry == 0) {
            back_why = "a NULL prev pointer";
            break;
        }
        seen.insert(entry);
        if (seen.size() > LinuxKernel::kMaxListEntries) {
            return Error{name + " has more than " + std::to_string(LinuxKernel::kMaxListEntries) +
                         " entries: giving up"};
        }
        rest.push_back(entry);
        prev = r.pointer(entry + r.ptr, (name + " entry " + hex(entry)).c_str());
        if (!prev) {
            back_why = prev.error();
            break;
        }
        entry = *prev;
    }
    if (!met) {
        broken(name + " is broken going forward (" + why + ") and backward (" + back_why +
               "): entries between the two may be missing");
    }
    for (auto it = rest.rbegin(); it != rest.rend(); ++it) {
        auto keep = fn(*it);
        if (!keep) {
            return Error{keep.error()};
        }
        if (!*keep) {
            break;
        }
    }
    return true;
}

}  // namespace

Expected<std::vector<Process>> LinuxKernel::processes(PhysicalMemory& mem, bool kpti) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    std::vector<Process> out;
    const uint64_t head = l.init_task + location_->virt_slide + l.task_tasks;
    auto walked = walk_list(r, head, "the task list (init_task.tasks)",
                            [&](uint64_t entry) -> Expected<bool> {
        // One unreadable part makes this entry partial, never the list:
        // what reads is kept, the rest is 0 (a hostile guest can link a
        // forged task_struct in).
        Process p;
        p.kaddr = entry - l.task_tasks;
        auto problem = [&](const std::string& why) {
            p.partial += (p.partial.empty() ? "task_struct at " + hex(p.kaddr) + ": " : "; ") + why;
        };
        if (auto tgid = r.field(p.kaddr, l.task_tgid, "task_struct.tgid")) {
            p.pid = *tgid;
        } else {
            problem(tgid.error());
        }
        if (auto comm = r.cstring(p.kaddr + l.task_comm.offset, l.comm_size, "task_struct.comm")) {
            p.name = *comm;
        } else {
            problem(comm.error());
        }
        if (auto parent = r.field(p.kaddr, l.task_real_parent, "task_struct.real_parent");
            !parent) {
            problem(parent.error());
        } else if (*parent != 0) {
            if (auto ppid = r.field(*parent, l.task_tgid, "the parent's task_struct.tgid")) {
                p.ppid = *ppid;
            } else {
                problem(ppid.error());
            }
        }
        if (auto mm = r.field(p.kaddr, l.task_mm, "task_struct.mm"); !mm) {
            problem(mm.error());
        } else if (*mm != 0) {
            if (auto pgd = mm_pgd(mem, *mm, kpti)) {
                p.mm = *mm;
                p.pgd = *pgd;
            } else {
                problem(pgd.error());
            }
        }
        out.push_back(std::move(p));
        return true;
    }, [&](const std::string& why) {
        Process gap;
        gap.partial = why;
        out.push_back(std::move(gap));
    });
    if (!walked) {
        return Error{walked.error()};
    }
    return out;
}

Expected<std::string> LinuxKernel::dentry_path(PhysicalMemory& mem, uint64_t dentry,
                                               uint64_t vfsmount, DentryWalkCache* steps) const {
    auto lay = layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    const Reader r{mem, mode_, location_ ? location_->pgd_paddr : 0, pointer_bytes()};
    using Step = DentryWalkCache::Step;
    // One step up from (mount, dentry), read from the guest.
    auto read_step = [&](uint64_t mount, uint64_t dentry) -> Expected<Step> {
        if (mount != 0) {
            auto root = r.field(mount + l.mount_mnt, l.vfsmount_root, "vfsmount.mnt_root");
            if (!root) {
                return Error{root.error()};
            }
            if (*root == dentry) {
                auto parent = r.field(mount, l.mount_parent, "mount.mnt_parent");
                auto point = r.field(mount, l.mount_mountpoint, "mount.mnt_mountpoint");
                if (!parent || !point) {
                    return Error{!parent ? parent.error() : point.error()};
                }
                if (*parent == mount || *parent == 0) {
                    return Step{};  // the root of the root mount
                }
                return Step{Step::Kind::CrossMount, *parent, *point, {}};
            }
        }
        auto parent = r.field(dentry, l.dentry_parent, "dentry.d_parent");
        if (!parent) {
            return Error{parent.error()};
        }
        if (*parent == dentry || *parent == 0) {
            return Step{};  // a root
        }
        auto name_ptr = r.field(dentry + l.dentry_name, l.qstr_name, "dentry.d_name.name");
        if (!name_ptr) {
            return Error{name_ptr.error()};
        }
        auto name = r.cstring(*name_ptr, 256, "a dentry's name");
        if (!name) {
            return Error{name.error()};
        }
        return Step{Step::Kind::Up, mount, *parent, std::move(*name)};
    };

    std::vector<std::string> parts;
    uint64_t mount = (vfsmount != 0 && l.has_mounts) ? vfsmount - l.mount_mnt : 0;
    // The walk is bounded by the path's length and by kMaxSteps (mount
    // crossings add no bytes). A cycle (a corrupt structure) is found with
    // Brent's method: the walk meets again the (mount, dentry) it last
    // marked, marked at steps 1, 2, 4, 8... (no memory per step).
    constexpr size_t kMaxSteps = 8192;
    const uint64_t start = dentry;
    std::pair<uint64_t, uint64_t> mark{mount, dentry};
    size_t next_mark = 1;
    size_t bytes = 0;
    bool cut = false;
    for (size_t taken = 0;; ++taken) {
        if (taken > 0 && mark == std::pair{mount, dentry}) {
            return Error{"the dentry chain of " + hex(start) + " has a cycle (dentry " +
                         hex(dentry) + " again)"};
        }
        if (taken == next_mark) {
            mark = {mount, dentry};
            next_mark *= 2;
        }
        if (taken > kMaxSteps) {
            return Error{"the dentry chain of " + hex(start) + " is longer than " +
                         std::to_string(kMaxSteps) + " steps"};
        }
        const Step* step = steps ? steps->find(mount, dentry) : nullptr;
        Step fresh;
        if (!step) {
            auto read = read_step(mount, dentry);
            if (!read) {
                return Error{read.error()};
            }
            fresh = std::move(*read);
            step = &fresh;
            if (steps) {
                steps->add(mount, dentry, fresh);
            }
        }
        if (step->kind == Step::Kind::Root) {
            break;
        }
        if (step->kind == Step::Kind::Up) {
            if (bytes + 1 + step->name.size() > kMaxPathBytes - 4) {
                cut = true;  // deeper than PATH_MAX: the last components that fit
                break;
            }
            bytes += 1 + step->name.size();
            parts.push_back(step->name);
        }
        mount = step->next_mount;
        dentry = step->next_dentry;
    }
    std::string path = cut ? "/..." : "";
    path.reserve(bytes + 4);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        path += "/" + *it;
    }
    return path.empty() ? std::string("/") : path;
}

Expected<std::vector<Module>> LinuxKernel::task_modules(PhysicalMemory& mem,
                                                        uint64_t task) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto mm = r.field(task, (*lay)->task_mm, "task_struct.mm");
    if (!mm) {
        return Error{mm.error()};
    }
    if (*mm == 0) {
        return std::vector<Module>{};  // a kernel thread maps no files
    }
    return mm_modules(mem, *mm);
}

Expected<std::vector<uint64_t>> LinuxKernel::mm_vmas(PhysicalMemory& mem, uint64_t mm) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    std::vector<uint64_t> out;
    if (!l.vma_list) {
        auto entries = maple_tree_entries(mem, mode_, location_->pgd_paddr, l.maple, mm + l.mm_mt);
        if (!entries) {
            return Error{"the VMAs of the mm_struct at " + hex(mm) + ": " + entries.error()};
        }
        out.reserve(entries->size());
        for (const auto& e : *entries) {
            out.push_back(e.value);
        }
        return out;
    }
    // mm->mmap, then vm_next until NULL, in address order. The guest may be
    // hostile: the walk is bounded, a revisited VMA is a cycle, and the
    // addresses must grow.
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    const std::string what = "the VMA list of the mm_struct at " + hex(mm) + " (mm->mmap)";
    auto first = r.field(mm, l.mm_mmap, "mm_struct.mmap");
    if (!first) {
        return Error{what + ": " + first.error()};
    }
    std::unordered_set<uint64_t> seen;
    uint64_t previous_end = 0;
    for (uint64_t vma = *first; vma != 0;) {
        if (!seen.insert(vma).second) {
            return Error{what + " is broken: vm_area_struct " + hex(vma) + " comes back after " +
                         std::to_string(out.size()) + " entries"};
        }
        if (out.size() >= kMaxListEntries) {
            return Error{what + " has more than " + std::to_string(kMaxListEntries) +
                         " entries: giving up"};
        }
        auto start = r.field(vma, l.vma_start, "vm_area_struct.vm_start");
        auto end = r.field(vma, l.vma_end, "vm_area_struct.vm_end");
        auto next = r.field(vma, l.vma_next, "vm_area_struct.vm_next");
        if (!start || !end || !next) {
            return Error{what + ": vm_area_struct at " + hex(vma) + ": " +
                         (!start ? start.error() : !end ? end.error() : next.error())};
        }
        if (*end <= *start || *start < previous_end) {
            return Error{what + " is broken: vm_area_struct " + hex(vma) + " spans " +
                         hex(*start) + ".." + hex(*end) + ", not above the previous one's end " +
                         hex(previous_end)};
        }
        previous_end = *end;
        out.push_back(vma);
        vma = *next;
    }
    return out;
}

Expected<std::vector<Module>> LinuxKernel::mm_modules(PhysicalMemory& mem, uint64_t mm) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto vmas = mm_vmas(mem, mm);
    if (!vmas) {
        return Error{vmas.error()};
    }
    std::map<std::string, Module> by_path;
    std::map<uint64_t, std::string> path_of_file;
    DentryWalkCache steps;
    // The file's identity, through file->f_inode. Unreadable: left 0.
    auto identify = [&](Module& m, uint64_t vma, uint64_t file) {
        if (!l.has_identity) {
            return;
        }
        auto pgoff = r.field(vma, l.vma_pgoff, "vm_area_struct.vm_pgoff");
        if (!pgoff) {
            return;
        }
        m.base_pgoff = *pgoff;
        auto inode = r.field(file, l.file_inode, "file.f_inode");
        if (!inode || *inode == 0) {
            return;
        }
        auto ino = r.field(*inode, l.inode_ino, "inode.i_ino");
        auto sb = r.field(*inode, l.inode_sb, "inode.i_sb");
        auto size = r.field(*inode, l.inode_size, "inode.i_size");
        if (!ino || !sb || !size || *sb == 0) {
            return;
        }
        auto dev = r.field(*sb, l.sb_dev, "super_block.s_dev");
        if (!dev) {
            return;
        }
        if (l.has_mtime) {
            auto sec = r.field(*inode, l.mtime_sec, "inode mtime");
            auto nsec = r.field(*inode, l.mtime_nsec, "inode mtime");
            if (!sec || !nsec) {
                return;
            }
            m.mtime_sec = *sec;
            m.mtime_nsec = *nsec;
        }
        m.inode = *ino;
        m.dev = *dev;
        m.file_size = *size;
    };
    for (const uint64_t vma : *vmas) {
        auto start = r.field(vma, l.vma_start, "vm_area_struct.vm_start");
        auto end = r.field(vma, l.vma_end, "vm_area_struct.vm_end");
        auto file = r.field(vma, l.vma_file, "vm_area_struct.vm_file");
        if (!start || !end || !file || *end < *start) {
            // One unreadable mapping is one partial entry, not a failed list.
            Module& m = by_path[unreadable_file_name(vma)];
            m.fullname = m.name = unreadable_file_name(vma);
            m.partial = "vm_area_struct at " + hex(vma) + ": " +
                        (!start ? start.error() : !end ? end.error() : !file ? file.error()
                                                                                   : "vm_end below vm_start");
            continue;
        }
        if (*file == 0) {
            continue;
        }
        std::string problem;
        auto known = path_of_file.find(*file);
        if (known == path_of_file.end()) {
            auto path = file_path(mem, *file, &steps);
            if (!path) {
                // Listed under a name no path can have, with its extent.
                problem = "the file mapped at " + hex(*start) + ": " + path.error();
                known = path_of_file.emplace(*file, unreadable_file_name(*file)).first;
            } else {
                known = path_of_file.emplace(*file, *path).first;
            }
        }
        auto [it, fresh] = by_path.try_emplace(known->second);
        Module& m = it->second;
        if (fresh) {
            m.fullname = known->second;
            m.name = known->second.front() == '/' ? basename(m.fullname) : m.fullname;
            m.base = *start;
            m.size = *end - *start;
            m.partial = problem;
            m.file = *file;
            identify(m, vma, *file);
        } else {
            const uint64_t top = std::max(m.base + m.size, *end);
            m.base = std::min(m.base, *start);
            m.size = top - m.base;
        }
    }
    std::vector<Module> out;
    for (auto& [path, m] : by_path) {
        out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(),
              [](const Module& a, const Module& b) { return a.base < b.base; });
    return out;
}

Expected<std::vector<Module>> LinuxKernel::modules(PhysicalMemory& mem, uint64_t pgd,
                                                   bool kpti) const {
    auto procs = processes(mem, kpti);
    if (!procs) {
        return Error{procs.error()};
    }
    for (const auto& p : *procs) {
        if (p.pgd == pgd && pgd != 0) {
            return task_modules(mem, p.kaddr);
        }
    }
    return Error{"no process has pgd " + hex(pgd)};
}

Expected<std::vector<Module>> LinuxKernel::kernel_modules(PhysicalMemory& mem) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    std::vector<Module> out;
    Module kernel;
    kernel.name = kernel.fullname = "vmlinux";
    kernel.base = l.text + location_->virt_slide;
    kernel.size = l.end - l.text;
    out.push_back(std::move(kernel));
    if (!l.modules_error.empty()) {
        return Error{"cannot list kernel modules: " + l.modules_error};
    }
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto walked = walk_list(r, l.modules_head + location_->virt_slide, "the module list (modules)",
                            [&](uint64_t entry) -> Expected<bool> {
        auto module = kernel_module(mem, entry - l.module_list);
        if (!module) {
            Module partial;  // listed with what is known: where it is
            partial.kaddr = entry - l.module_list;
            partial.partial = module.error();
            out.push_back(std::move(partial));
        } else {
            out.push_back(std::move(*module));
        }
        return true;
    }, [&](const std::string& why) {
        Module gap;
        gap.partial = why;
        out.push_back(std::move(gap));
    });
    if (!walked) {
        return Error{walked.error()};
    }
    return out;
}

Expected<Module> LinuxKernel::kernel_module(PhysicalMemory& mem, uint64_t module) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    if (!l.modules_error.empty()) {
        return Error{"cannot read kernel modules: " + l.modules_error};
    }
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto name = r.cstring(module + l.module_name, l.module_name_size, "module.name");
    if (!name) {
        return Error{"struct module at " + hex(module) + ": " + name.error()};
    }
    Module m;
    m.name = m.fullname = *name;
    m.kaddr = module;
    // As /proc/modules once the module is live: the text's base, the sizes
    // of the regions that stay added up (init regions are listed while
    // they exist, but not counted).
    for (size_t i = 0; i < l.module_regions.size(); ++i) {
        const auto& region = l.module_regions[i];
        const std::string what = "module region " + region.name;
        auto base = r.field(module + region.offset, l.layout_base, (what + " base").c_str());
        auto size = r.field(module + region.offset, l.layout_size, (what + " size").c_str());
        if (!base || !size) {
            return Error{"struct module at " + hex(module) + " (" + *name + "): " +
                         (!base ? base.error() : size.error())};
        }
        if (i == l.module_text) {
            m.base = *base;
        }
        if (*size == 0) {
            continue;
        }
        if (!region.init) {
            m.size += *size;
        }
        m.regions.push_back({region.name, *base, *size});
    }
    return m;
}

Expected<Task> LinuxKernel::task(PhysicalMemory& mem, uint64_t task, bool kpti) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto pid = r.field(task, l.task_pid, "task_struct.pid");
    auto tgid = r.field(task, l.task_tgid, "task_struct.tgid");
    auto mm = r.field(task, l.task_mm, "task_struct.mm");
    auto comm = r.cstring(task + l.task_comm.offset, l.comm_size, "task_struct.comm");
    if (!pid || !tgid || !mm || !comm) {
        return Error{"task_struct at " + hex(task) + ": " +
                     (!pid ? pid.error() : !tgid ? tgid.error() : !mm ? mm.error() : comm.error())};
    }
    Task t{task, *pid, *tgid, *mm, 0, *comm};
    if (*mm != 0) {
        auto pgd = mm_pgd(mem, *mm, kpti);
        if (!pgd) {
            return Error{"task_struct at " + hex(task) + ": " + pgd.error()};
        }
        t.pgd = *pgd;
    }
    return t;
}

Expected<ExecArguments> LinuxKernel::exec_arguments(PhysicalMemory& mem, uint64_t task,
                                                    bool kpti) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    if (!l.has_args) {
        return Error{"the Linux symbol table lacks mm_struct.arg_start/env_end"};
    }
    auto t = this->task(mem, task, kpti);
    if (!t) {
        return Error{t.error()};
    }
    if (t->mm == 0) {
        return Error{"task_struct at " + hex(task) + " has no mm (a kernel thread, or exiting)"};
    }
    const Reader k{mem, mode_, location_->pgd_paddr};
    uint64_t bounds[4] = {};
    const Field* fields[4] = {&l.mm_arg_start, &l.mm_arg_end, &l.mm_env_start, &l.mm_env_end};
    for (int i = 0; i < 4; ++i) {
        auto v = k.field(t->mm, *fields[i], "mm_struct's argument bounds");
        if (!v) {
            return Error{v.error()};
        }
        bounds[i] = *v;
    }
    const Reader user{mem, mode_, t->pgd};
    auto region = [&](uint64_t start, uint64_t end, const char* what) -> Expected<std::string> {
        if (end < start) {
            return Error{std::string(what) + " of task_struct at " + hex(task) + " ends (" +
                         hex(end) + ") before it starts (" + hex(start) + ")"};
        }
        std::string bytes(std::min(end - start, kMaxArgBytes), '\0');
        auto r = read_virtual(mem, mode_, t->pgd, start, bytes.data(), bytes.size());
        if (!r) {
            return Error{std::string("cannot read ") + what + ": " + r.error()};
        }
        return bytes;
    };
    auto args = region(bounds[0], bounds[1], "the arguments");
    if (!args) {
        return Error{args.error()};
    }
    auto env = region(bounds[2], bounds[3], "the environment");
    if (!env) {
        return Error{env.error()};
    }
    ExecArguments out;
    size_t at = 0;
    while (at < args->size()) {
        const size_t nul = args->find('\0', at);
        const size_t end = nul == std::string::npos ? args->size() : nul;
        out.argv.push_back(args->substr(at, end - at));
        at = end + 1;
    }
    out.envc = static_cast<uint64_t>(std::count(env->begin(), env->end(), '\0'));
    if (auto path = user.cstring(bounds[3], 4096, "the executed path")) {
        out.execfn = *path;
    }
    return out;
}

Expected<uint64_t> LinuxKernel::compat_landing_pad(PhysicalMemory& mem, unsigned cpu) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    if (!l.has_landing_pad) {
        return Error{"the Linux symbol table has no mm_struct.context.vdso or 32-bit vDSO image"};
    }
    auto thread = current_thread(mem, cpu);
    if (!thread) {
        return Error{thread.error()};
    }
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto mm = r.field(thread->kaddr, l.task_mm, "task_struct.mm");
    if (!mm) {
        return Error{mm.error()};
    }
    if (*mm == 0) {
        return Error{"a kernel thread runs (no mm)"};
    }
    auto vdso = r.field(*mm, l.mm_vdso, "mm_struct.context.vdso");
    if (!vdso) {
        return Error{vdso.error()};
    }
    if (*vdso == 0) {
        return Error{"the process has no vDSO mapped"};
    }
    auto pad = r.field(l.vdso_image32 + location_->virt_slide, l.image_landing_pad,
                       "vdso_image.sym_int80_landing_pad");
    if (!pad) {
        return Error{pad.error()};
    }
    return *vdso + *pad;
}

Expected<Thread> LinuxKernel::current_thread(PhysicalMemory& mem, unsigned cpu) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    if (l.current_task == 0 || l.per_cpu_offset == 0) {
        return Error{"the Linux symbol table has no current_task/pcpu_hot or __per_cpu_offset"};
    }
    if (l.nr_cpus != 0 && cpu >= l.nr_cpus) {
        return Error{"CPU " + std::to_string(cpu) + " is beyond __per_cpu_offset's " +
                     std::to_string(l.nr_cpus) + " entries"};
    }
    const uint64_t slide = location_->virt_slide;
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    const auto offsets = per_cpu_offsets_;  // one location's, even if it changes meanwhile
    uint64_t offset = cpu < kCachedCpus ? (*offsets)[cpu].load(std::memory_order_relaxed)
                                        : kUnknown;
    if (offset == kUnknown) {
        auto read = r.pointer(l.per_cpu_offset + slide + uint64_t{l.ptr} * cpu, "__per_cpu_offset");
        if (!read) {
            return Error{read.error()};
        }
        offset = *read;
        if (cpu < kCachedCpus) {
            (*offsets)[cpu].store(offset, std::memory_order_relaxed);
        }
    }
    // i386's per-CPU variables are linked in the image (they move with it).
    const uint64_t var = l.ptr == 4 || l.current_task >= kStartKernelMap
                             ? l.current_task + slide
                             : l.current_task;
    auto task = r.pointer((var + offset) & address_mask(l.ptr), "the per-CPU current task");
    if (!task) {
        return Error{task.error()};
    }
    // pid and tgid are adjacent 4-byte members on every kernel: one read.
    if (l.task_tgid.offset == l.task_pid.offset + 4 && l.task_pid.size == 4 &&
        l.task_tgid.size == 4) {
        auto both = r.uint(*task + l.task_pid.offset, 8, "task_struct.pid/tgid");
        if (!both) {
            return Error{"task_struct at " + hex(*task) + ": " + both.error()};
        }
        return Thread{*task, *both & 0xffffffffu, *both >> 32};
    }
    auto tid = r.field(*task, l.task_pid, "task_struct.pid");
    auto pid = r.field(*task, l.task_tgid, "task_struct.tgid");
    if (!tid || !pid) {
        return Error{"task_struct at " + hex(*task) + ": " + (!tid ? tid.error() : pid.error())};
    }
    return Thread{*task, *tid, *pid};
}

Expected<uint64_t> LinuxKernel::mm_pgd(PhysicalMemory& mem, uint64_t mm, bool kpti) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto pgd = r.field(mm, (*lay)->mm_pgd, "mm_struct.pgd");
    if (!pgd) {
        return Error{pgd.error()};
    }
    // Normalised for the kernel's kind of tables (an i386 kernel runs PAE
    // or 2-level paging; whatever mode_ says, so unpaged reads of synthetic
    // memory name pgds as the guest's CR3 would).
    const PagingMode tables = pointer_bytes() == 8           ? PagingMode::Long4
                              : mode_ == PagingMode::Legacy32 ? PagingMode::Legacy32
                                                              : PagingMode::Pae;
    return normalize_pgd(*pgd - location_->page_offset_base, tables, kpti);
}

Expected<Vma> LinuxKernel::vma(PhysicalMemory& mem, uint64_t vma) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto start = r.field(vma, l.vma_start, "vm_area_struct.vm_start");
    auto end = r.field(vma, l.vma_end, "vm_area_struct.vm_end");
    auto mm = r.field(vma, l.vma_mm, "vm_area_struct.vm_mm");
    auto file = r.field(vma, l.vma_file, "vm_area_struct.vm_file");
    if (!start || !end || !mm || !file) {
        return Error{"vm_area_struct at " + hex(vma) + ": " +
                     (!start ? start.error() : !end ? end.error() : !mm ? mm.error()
                                                                    : file.error())};
    }
    return Vma{*start, *end, *mm, *file};
}

Expected<std::string> LinuxKernel::file_path(PhysicalMemory& mem, uint64_t file,
                                             DentryWalkCache* steps) const {
    auto lay = located_layout();
    if (!lay) {
        return Error{lay.error()};
    }
    const Layout& l = **lay;
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    auto dentry = r.field(file + l.file_path, l.path_dentry, "file.f_path.dentry");
    auto mnt = r.field(file + l.file_path, l.path_mnt, "file.f_path.mnt");
    if (!dentry || !mnt) {
        return Error{"struct file at " + hex(file) + ": " +
                     (!dentry ? dentry.error() : mnt.error())};
    }
    return dentry_path(mem, *dentry, *mnt, steps);
}

Expected<std::string> LinuxKernel::kernel_string(PhysicalMemory& mem, uint64_t va,
                                                 size_t max) const {
    if (!location_) {
        return Error{"the Linux kernel has not been located in guest memory yet"};
    }
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    return r.cstring(va, max, "a kernel string");
}

Expected<bool> LinuxKernel::kpti(PhysicalMemory& mem) const {
    if (!location_) {
        return Error{"the Linux kernel has not been located in guest memory yet"};
    }
    const std::string why = "cannot tell whether the kernel isolates page tables (KPTI): ";
    auto data = symbols_.symbol_address("boot_cpu_data");
    auto caps = symbols_.member("cpuinfo_x86", "x86_capability");
    if (!data || !caps || caps->type.kind != "array" || caps->type.count == 0 ||
        !caps->type.subtype) {
        return Error{why + "the symbol table lacks boot_cpu_data or cpuinfo_x86.x86_capability"};
    }
    const size_t word = symbols_.type_size(caps->type.subtype->name).value_or(4);
    const uint64_t bits = caps->type.count * word * 8;
    const uint64_t slide = location_->virt_slide;
    const Reader r{mem, mode_, location_->pgd_paddr, pointer_bytes()};
    // The bit's number: the index of "pti" in x86_cap_flags, the names
    // /proc/cpuinfo prints (generated from cpufeatures.h, so it is this
    // kernel's own numbering); without that table, X86_FEATURE_PTI's number
    // since it was introduced (4.15), word 7 bit 11.
    uint64_t bit = 7 * 32 + 11;
    if (auto flags = symbols_.symbol_address("x86_cap_flags")) {
        const unsigned ptr = pointer_bytes();
        std::vector<uint64_t> names(bits);
        std::vector<uint8_t> raw(bits * ptr);
        auto read = read_virtual(mem, mode_, location_->pgd_paddr, *flags + slide, raw.data(),
                                 raw.size());
        if (!read) {
            return Error{why + "cannot read x86_cap_flags: " + read.error()};
        }
        for (uint64_t i = 0; i < bits; ++i) {
            std::memcpy(&names[i], raw.data() + i * ptr, ptr);
        }
        bool found = false;
        for (uint64_t i = 0; i < names.size() && !found; ++i) {
            if (names[i] == 0) {
                continue;
            }
            auto name = r.cstring(names[i], 8, "a CPU feature name");
            if (name && *name == "pti") {
                bit = i;
                found = true;
            }
        }
        if (!found) {
            return Error{why + "x86_cap_flags names no \"pti\" feature"};
        }
    }
    if (bit >= bits) {
        return Error{why + "the feature's bit " + std::to_string(bit) +
                     " is beyond boot_cpu_data.x86_capability (" + std::to_string(bits) +
                     " bits)"};
    }
    auto offset = symbols_.member_offset("cpuinfo_x86", "x86_capability");
    auto value = r.uint(*data + slide + *offset + bit / 8, 1, "boot_cpu_data.x86_capability");
    if (!value) {
        return Error{why + value.error()};
    }
    return ((*value >> (bit % 8)) & 1) != 0;
}

size_t LinuxKernel::comm_size() const {
    auto lay = layout();
    return lay ? (*lay)->comm_size : 16;
}

Expected<bool> check_supported_kernel(const std::string& banner) {
    static const std::string prefix = "Linux version ";
    unsigned major = 0, minor = 0;
    if (banner.compare(0, prefix.size(), prefix) != 0 ||
        std::sscanf(banner.c_str() + prefix.size(), "%u.%u", &major, &minor) != 2) {
        return Error{"the symbol table's banner does not name a Linux version ('" +
                     banner.substr(0, 40) + "')"};
    }
    auto version = [](unsigned a, unsigned b) { return std::to_string(a) + "." + std::to_string(b); };
    const bool too_old = major < kMinKernel.major ||
                         (major == kMinKernel.major && minor < kMinKernel.minor);
    const bool too_new = major > kMaxKernel.major ||
                         (major == kMaxKernel.major && minor > kMaxKernel.minor);
    if (too_old || too_new) {
        const std::string range = "x86-64 Linux " + version(kMinKernel.major, kMinKernel.minor) +
                                  " through " + version(kMaxKernel.major, kMaxKernel.minor);
        return Error{"Linux " + version(major, minor) + " is not supported: introspection reads " +
                     "the kernel's structures (task list, mappings, modules) and hooks its " +
                     "functions with the layouts known for " + range + "; " +
                     (too_old ? "older kernels were not checked"
                              : "newer kernels may have changed them") +
                     " (supported: " + range + ")"};
    }
    return true;
}

}  // namespace pyrebox::vmi::linux_guest
