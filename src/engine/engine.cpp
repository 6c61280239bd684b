#include "engine/engine.h"

#include <algorithm>
#include <iterator>

#include "base/ps2_keycodes.h"

namespace pyrebox {

Engine::Engine(CallbackRegistry& registry, MonitoredSet& monitored, VcpuFlags& flags,
               int max_vcpus)
    : registry_(registry), monitored_(monitored), flags_(flags),
      vcpus_(static_cast<size_t>(max_vcpus > 0 ? max_vcpus : 1)) {
    for (size_t i = 0; i < vcpus_.size(); ++i) {
        Vcpu& v = vcpus_[i];
        v.block_event.type = CallbackType::BlockBegin;
        v.insn_event.type = CallbackType::InsnBegin;
        v.mem_event.type = CallbackType::MemRead;
        for (Event* e : {&v.block_event, &v.insn_event, &v.mem_event}) {
            e->cpu_index = static_cast<int>(i);
        }
    }
}

void Engine::set_kpti(bool kpti) {
    kpti_decided_ = true;
    if (kpti == kpti_) {
        return;
    }
    kpti_ = kpti;
    if (kpti) {
        // Identities already handed out become the pair's kernel half.
        for (auto& v : vcpus_) {
            v.pgd &= ~uint64_t{0x1000};
        }
        refresh_flags();
    }
}

uint64_t Engine::normalize(uint64_t cr3, PagingMode mode) const {
    return normalize_pgd(cr3, mode, kpti_);
}

Event Engine::base_event(CallbackType type, int vcpu) const {
    Event e;
    e.type = type;
    e.cpu_index = vcpu;
    e.pgd = vcpus_[static_cast<size_t>(vcpu)].pgd;
    return e;
}

void Engine::on_cr3_load(int vcpu, uint64_t value, PagingMode mode) {
    Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    // A CR3 with bit 12 set may be KPTI's user half (x86-64 or i386): the
    // kernel is asked once it can be.
    const bool paging = mode != PagingMode::None;
    if (!kpti_decided_ && paging && kpti_source_ &&
        (normalize_pgd(value, mode, false) & 0x1000) != 0 &&
        ++kpti_attempts_ >= kpti_next_attempt_) {
        kpti_next_attempt_ =
            kpti_attempts_ + std::min<uint64_t>(kpti_attempts_, kMaxKptiAttemptGap);
        if (const auto decided = kpti_source_()) {
            set_kpti(*decided);
        }
    }
    const uint64_t pgd = normalize(value, mode);
    // Bit 63 (with PCID) asks the CPU to keep the TLB.
    const bool no_flush = mode != PagingMode::Legacy32 && mode != PagingMode::Pae &&
                          (value >> 63) != 0;
    if (!no_flush) {
        v.exec_pages.clear();
    }
    if (pgd == v.pgd) {
        return;  // same process (KPTI pair, PCID switch, TLB flush by reload)
    }
    const uint64_t old = v.pgd;
    v.pgd = pgd;
    const bool monitored = monitored_.contains(pgd);
    if (monitored != v.monitored) {
        v.monitored = monitored;
        flags_.set_monitored(vcpu, monitored);
    }
    Event e = base_event(CallbackType::ContextChange, vcpu);
    e.old_pgd = old;
    e.new_pgd = pgd;
    registry_.dispatch(e, /*monitored=*/true);
}

void Engine::resync(int vcpu, uint64_t cr3, PagingMode mode) {
    if (vcpu < 0 || static_cast<size_t>(vcpu) >= vcpus_.size()) {
        return;
    }
    Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    v.pgd = normalize(cr3, mode);
    v.exec_pages.clear();
    v.pending = Pending{};
    flags_.set_pending(vcpu, false);
    v.monitored = monitored_.contains(v.pgd);
    flags_.set_monitored(vcpu, v.monitored);
}

void Engine::fire_pending(int vcpu, uint64_t next_pc, bool block_starts) {
    Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    // Copy and clear first: a callback may run code that arms new events.
    // BLOCK_END waits for the next block, not the block's next instruction.
    const Pending p = v.pending;
    v.pending = Pending{};
    if (p.block_end && !block_starts) {
        v.pending.block_end = true;
        v.pending.block_tb = p.block_tb;
        v.pending.block_end_monitored = p.block_end_monitored;
    }
    flags_.set_pending(vcpu, v.pending.block_end);
    if (p.keyboard && read_keyboard_byte_) {
        const Keycodes keys = ps2_keycodes_for_read(read_keyboard_byte_(vcpu));
        for (size_t i = 0; i < keys.count; ++i) {
            Event e = base_event(CallbackType::Keystroke, vcpu);
            e.data = keys.codes[i];
            registry_.dispatch(e, /*monitored=*/true);
        }
    }
    if (p.opcode) {
        Event e = base_event(CallbackType::OpcodeRange, vcpu);
        e.pc = p.opcode_pc;
        e.next_pc = next_pc;
        e.opcode = p.opcode_value;
        registry_.dispatch(e, p.opcode_monitored);
    }
    if (p.insn_end) {
        Event e = base_event(CallbackType::InsnEnd, vcpu);
        e.pc = p.insn_pc;
        e.next_pc = next_pc;
        registry_.dispatch(e, p.insn_end_monitored);
    }
    if (p.block_end && block_starts) {
        Event e = base_event(CallbackType::BlockEnd, vcpu);
        e.tb = p.block_tb;
        e.pc = p.block_tb.last_pc;
        e.next_pc = next_pc;
        registry_.dispatch(e, p.block_end_monitored);
    }
}

void Engine::on_pending_at_block(int vcpu, const TbInfo& tb) {
    if (any_pending(vcpus_[static_cast<size_t>(vcpu)].pending)) {
        fire_pending(vcpu, tb.pc, /*block_starts=*/true);
    }
}

void Engine::on_pending_at_insn(int vcpu, uint64_t pc) {
    const Pending& p = vcpus_[static_cast<size_t>(vcpu)].pending;
    if (p.insn_end || p.opcode || p.keyboard) {
        fire_pending(vcpu, pc, /*block_starts=*/false);
    }
}

void Engine::on_block(int vcpu, const TbInfo& tb) {
    Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    // Read before any dispatch: a callback may change the plan.
    const Plan& plan = registry_.current_plan();
    const bool block_end = plan.block_end || plan.block_end_all;
    const bool block_begin = plan.block_begin || plan.block_begin_all;
    const bool tlb_exec = plan.tlb_exec_all || (plan.tlb_exec && v.monitored);
    if (block_end) {
        v.pending.block_end = true;
        v.pending.block_tb = tb;
        v.pending.block_end_monitored = v.monitored;
        flags_.set_pending(vcpu, true);
    }
    if (block_begin) {
        Event& e = v.block_event;
        e.pgd = v.pgd;
        e.tb = tb;
        e.pc = tb.pc;
        registry_.dispatch(e, v.monitored);
    }
    if (tlb_exec && v.exec_pages.insert(tb.pc >> 12).second) {
        Event e = base_event(CallbackType::TlbExec, vcpu);
        e.pc = tb.pc;
        e.vaddr = tb.pc;
        registry_.dispatch(e, v.monitored);
    }
}

void Engine::on_insn(int vcpu, uint64_t pc) {
    Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    const Plan& plan = registry_.current_plan();
    const bool insn_begin = plan.insn_begin || plan.insn_begin_all;
    if (plan.insn_end || plan.insn_end_all) {
        v.pending.insn_end = true;
        v.pending.insn_pc = pc;
        v.pending.insn_end_monitored = v.monitored;
        flags_.set_pending(vcpu, true);
    }
    if (insn_begin) {
        Event& e = v.insn_event;
        e.pgd = v.pgd;
        e.pc = pc;
        registry_.dispatch(e, v.monitored);
    }
}

void Engine::on_exec_address(int vcpu, uint64_t pc, const TbInfo& tb) {
    Event e = base_event(CallbackType::BlockBegin, vcpu);
    e.pc = pc;
    e.tb = tb;
    registry_.dispatch(e, true, /*at_address=*/true);
    e.type = CallbackType::InsnBegin;
    registry_.dispatch(e, true, /*at_address=*/true);
}

void Engine::on_opcode(int vcpu, uint64_t pc, uint16_t opcode) {
    Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    v.pending.opcode = true;
    v.pending.opcode_pc = pc;
    v.pending.opcode_value = opcode;
    v.pending.opcode_monitored = v.monitored;
    flags_.set_pending(vcpu, true);
}

void Engine::on_keyboard_read(int vcpu) {
    vcpus_[static_cast<size_t>(vcpu)].pending.keyboard = true;
    flags_.set_pending(vcpu, true);
}

void Engine::on_memory(int vcpu, uint64_t pc, bool is_write, uint64_t vaddr, uint64_t paddr,
                       uint64_t size, uint64_t data, uint64_t data_high) {
    // Accesses nobody wants were dropped by memory_wanted() before they
    // were decoded; dispatch applies each callback's own filter.
    Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    Event& e = v.mem_event;
    e.type = is_write ? CallbackType::MemWrite : CallbackType::MemRead;
    e.pgd = v.pgd;
    e.pc = pc;
    e.vaddr = vaddr;
    e.paddr = paddr;
    e.size = size;
    e.data = data;
    e.data_high = data_high;
    registry_.dispatch(e, v.monitored);
}

bool Engine::start_monitoring(uint64_t pgd) {
    const bool added = monitored_.add(pgd);
    refresh_flags();
    return added;
}

bool Engine::stop_monitoring(uint64_t pgd) {
    const bool removed = monitored_.remove(pgd);
    refresh_flags();
    return removed;
}

void Engine::refresh_flags() {
    for (size_t i = 0; i < vcpus_.size(); ++i) {
        const bool monitored = monitored_.contains(vcpus_[i].pgd);
        vcpus_[i].monitored = monitored;
        flags_.set_monitored(static_cast<int>(i), monitored);
    }
}

uint64_t Engine::current_pgd(int vcpu) const { return vcpus_[static_cast<size_t>(vcpu)].pgd; }

bool Engine::vcpu_monitored(int vcpu) const {
    return vcpus_[static_cast<size_t>(vcpu)].monitored;
}

}  // namespace pyrebox

namespace pyrebox {

namespace {

// fork/clone family numbers: the x86 system-call ABI fixes them (the names
// come from the kernel's own table; these few the engine needs itself).
struct CloneNumbers { uint64_t clone, fork, vfork, clone3; };
constexpr CloneNumbers kClone64{56, 57, 58, 435};
constexpr CloneNumbers kClone32{120, 2, 190, 435};
constexpr uint64_t kCloneVm = 0x100;

}  // namespace

void Engine::add_thread(Event& e) const {
    if (read_thread_ && !read_thread_(e.cpu_index, e.pid, e.tid)) {
        e.pid = e.tid = 0;
    }
}

void Engine::fast32_arguments(int vcpu, SyscallPath path, SyscallRegs& regs) const {
    // Read as int 0x80 passes them: EBX ECX EDX ESI EDI EBP, ESP.
    const uint64_t ebp = regs.args[5];
    if (path == SyscallPath::Sysenter) {
        regs.sp = ebp;
    } else {
        regs.args[1] = ebp;
    }
    // The sixth argument is the word at the user stack pointer, where the
    // kernel reads it (0 when unreadable: the kernel then fails the call).
    uint32_t sixth = 0;
    regs.args[5] = read_user_ && read_user_(vcpu, regs.sp & 0xffffffffu, &sixth, sizeof sixth)
                       ? sixth
                       : 0;
}

uint64_t Engine::fast32_return(int vcpu, uint64_t pc, uint64_t len) const {
    uint64_t pad = 0;
    if (read_landing_pad_ && read_landing_pad_(vcpu, pad)) {
        return pad;
    }
    // Without introspection: a call from the vDSO, whose landing pad follows
    // the `int 0x80` right after the instruction.
    uint8_t next[2] = {};
    if (read_user_ && read_user_(vcpu, pc + len, next, sizeof next) && next[0] == 0xCD &&
        next[1] == 0x80) {
        return pc + len + 2;
    }
    return 0;
}

void Engine::on_syscall(int vcpu, uint64_t pc, uint64_t len, SyscallPath path) {
    SyscallRegs regs;
    if (!read_syscall_regs_ || !read_syscall_regs_(vcpu, path, regs)) {
        return;
    }
    if (path == SyscallPath::Syscall && regs.code32) {
        path = SyscallPath::Syscall32;
    }
    const bool fast32 = path == SyscallPath::Sysenter || path == SyscallPath::Syscall32;
    if (fast32) {
        fast32_arguments(vcpu, path, regs);
    }
    const Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    const Plan& plan = registry_.current_plan();
    const bool deliver_entry = plan.any_syscall_entry();
    // Where the call returns: only looked up when a return is wanted.
    const uint64_t return_pc = !plan.any_syscall_return() ? 0
                               : fast32               ? fast32_return(vcpu, pc, len)
                                                      : pc + len;
    if (fast32 && return_pc != 0 && watch_return_site_) {
        watch_return_site_(return_pc);
    }
    if (return_pc != 0) {
        SyscallCall call;
        call.path = path;
        call.pgd = v.pgd;
        call.sp = regs.sp;
        call.entry_pc = pc;
        call.return_pc = return_pc;
        call.number = regs.number;
        std::copy(std::begin(regs.args), std::end(regs.args), std::begin(call.args));
        const CloneNumbers& n = path == SyscallPath::Syscall ? kClone64 : kClone32;
        if (regs.number == n.fork || regs.number == n.vfork) {
            call.has_child = true;
            call.child_sp = regs.sp;
            call.child_same_pgd = regs.number == n.vfork;
        } else if (regs.number == n.clone) {
            call.has_child = true;
            call.child_sp = regs.args[1] != 0 ? regs.args[1] : regs.sp;
            call.child_same_pgd = (regs.args[0] & kCloneVm) != 0;
        } else if (regs.number == n.clone3 && read_user_) {
            // struct clone_args: flags at 0, stack at 40, stack_size at 48.
            uint64_t words[7] = {};
            if (read_user_(vcpu, regs.args[0], words, sizeof words)) {
                call.has_child = true;
                call.child_sp = words[5] != 0 ? words[5] + words[6] : regs.sp;
                call.child_same_pgd = (words[0] & kCloneVm) != 0;
            }
        }
        syscalls_.enter(call);
    }
    if (deliver_entry) {
        Event e = base_event(CallbackType::Syscall, vcpu);
        e.pc = pc;
        e.next_pc = pc + len;
        e.number = regs.number;
        std::copy(std::begin(regs.args), std::end(regs.args), std::begin(e.args));
        e.syscall_path = static_cast<uint8_t>(path);
        add_thread(e);
        registry_.dispatch(e, v.monitored);
    }
}

void Engine::on_syscall_return(int vcpu, uint64_t pc) {
    uint64_t sp = 0, ret = 0;
    if (!read_return_regs_ || !read_return_regs_(vcpu, sp, ret)) {
        return;
    }
    const Vcpu& v = vcpus_[static_cast<size_t>(vcpu)];
    bool child = false;
    const auto call = syscalls_.resume(v.pgd, sp, pc, ret, child);
    if (!call) {
        return;
    }
    Event e = base_event(CallbackType::SyscallRet, vcpu);
    e.pc = call->entry_pc;
    e.next_pc = pc;
    e.number = call->number;
    std::copy(std::begin(call->args), std::end(call->args), std::begin(e.args));
    e.syscall_path = static_cast<uint8_t>(call->path);
    // 32-bit paths return EAX: sign-extend it, so -ENOENT reads as such.
    e.retval = call->path == SyscallPath::Syscall
                   ? ret
                   : static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(ret)));
    e.child = child;
    add_thread(e);
    registry_.dispatch(e, v.monitored);
}

}  // namespace pyrebox
