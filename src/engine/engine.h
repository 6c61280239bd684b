// The execution engine: turns what instrumented code reports (blocks and
// instructions starting, memory accesses, CR3 loads) into PyREBox events.
//
// It knows neither QEMU nor Python. The QEMU boundary calls the on_* methods
// from the vCPU threads, each with that vCPU's index; the engine keeps
// per-vCPU state (current address space, monitored flag, pending "end"
// events) and asks the VcpuFlags sink to mirror the two flags instrumented
// code tests inline (so unmonitored code never leaves generated code).
//
// "End" events (BLOCK_END, INSN_END, OPCODE_RANGE) are delivered when the
// next block or instruction of the same vCPU starts, which is when the CPU
// state after the block/instruction is visible and the real successor known.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_set>
#include <vector>

#include "engine/callback_registry.h"
#include "base/event.h"
#include "engine/monitored_set.h"
#include "engine/syscall_tracker.h"
#include "base/x86_paging.h"

namespace pyrebox {

// Flags instrumented code tests inline, one pair per vCPU.
class VcpuFlags {
public:
    virtual ~VcpuFlags() = default;
    virtual void set_monitored(int vcpu, bool monitored) = 0;
    virtual void set_pending(int vcpu, bool pending) = 0;
};

class Engine {
public:
    // While KPTI is undecided, a KPTI source that cannot tell yet is asked
    // again at most this many CR3 loads apart (1, 2, 4, ... at first).
    static constexpr uint64_t kMaxKptiAttemptGap = 1024;

    Engine(CallbackRegistry& registry, MonitoredSet& monitored, VcpuFlags& flags, int max_vcpus);

    // Linux KPTI: the kernel/user pgd pair is one process. Decided by the
    // KPTI source (the guest kernel's own flag, see on_cr3_load); set_kpti
    // decides it either way.
    void set_kpti(bool kpti);
    bool kpti() const { return kpti_; }
    // The KPTI source: whether the guest kernel isolates page tables, or
    // nullopt while it cannot tell (no kernel symbols, the kernel not
    // located yet). Set by the QEMU boundary; called on a vCPU thread.
    void set_kpti_source(std::function<std::optional<bool>()> source) {
        kpti_source_ = std::move(source);
    }

    // --- Called by instrumented code (vCPU thread `vcpu`). ---
    // A `mov cr3` is about to load `value` while the CPU is in `mode`.
    // KPTI: Linux with page-table isolation allocates each pgd as an 8 KiB
    // pair and enters user mode on kernel_pgd | 0x1000. Only a long-mode CR3
    // with bit 12 set is read differently with and without KPTI, so the
    // first one (while undecided) asks the KPTI source, before the value is
    // normalised. CR3 values themselves are never taken as evidence: a
    // kernel that allocates 4 KiB pgds gives neighbouring processes
    // adjacent ones.
    void on_cr3_load(int vcpu, uint64_t value, PagingMode mode);
    // The machine's state was replaced or may have been (the VM resumes,
    // after a loadvm for instance): vCPU `vcpu` now runs with `cr3`. Sets
    // its address space and monitored flag without a CONTEXTCHANGE, drops
    // its pending end events and its TLB_EXEC history. Called while the
    // vCPUs are stopped.
    void resync(int vcpu, uint64_t cr3, PagingMode mode);
    // A block starts and some end event is pending on this vCPU.
    void on_pending_at_block(int vcpu, const TbInfo& tb);
    // An instruction starts and some end event is pending on this vCPU.
    void on_pending_at_insn(int vcpu, uint64_t pc);
    // A block starts in a monitored process (or some callback wants every
    // process). Also delivers TLB_EXEC: the first block executed in a code
    // page since the address space was last loaded with a TLB flush, i.e.
    // where a real TLB takes an instruction-fetch miss (PCID and TLB capacity
    // are not modelled; a block is attributed to the page it starts in).
    void on_block(int vcpu, const TbInfo& tb);
    // An instruction starts in a monitored process (or ungated callbacks exist).
    void on_insn(int vcpu, uint64_t pc);
    // The instruction at `pc` has address-specific callbacks; `tb` is its block.
    void on_exec_address(int vcpu, uint64_t pc, const TbInfo& tb);
    // An instruction whose opcode is in some OPCODE_RANGE range starts.
    void on_opcode(int vcpu, uint64_t pc, uint16_t opcode);
    // The instruction starting now reads the PS/2 keyboard data port and the
    // controller holds a keyboard byte: the byte (AL after the instruction)
    // is read when the next instruction or block of this vCPU starts, and
    // KEYSTROKE is delivered for each keycode it stands for, in any process.
    void on_keyboard_read(int vcpu);
    // How the engine reads AL of a vCPU (set by the QEMU boundary).
    void set_keyboard_byte_reader(std::function<uint8_t(int vcpu)> reader) {
        read_keyboard_byte_ = std::move(reader);
    }
    // Checked before a memory access is decoded (the cheap test run for
    // every access while MEM_* callbacks exist): false when no callback
    // would take it (CallbackRegistry::memory_wanted).
    bool memory_wanted(int vcpu, bool is_write, uint64_t vaddr) const {
        return registry_.memory_wanted(is_write, vaddr,
                                       vcpus_[static_cast<size_t>(vcpu)].monitored);
    }
    // System calls. The registers of a call, as the entry path passes them.
    struct SyscallRegs {
        uint64_t number = 0;   // RAX / EAX
        uint64_t args[6] = {};
        uint64_t sp = 0;       // the user stack pointer
        // Set by the reader for SyscallPath::Syscall executed in a 32-bit
        // code segment (Syscall32): the registers are then read as for
        // int 0x80 (EAX, EBX ECX EDX ESI EDI EBP, ESP).
        bool code32 = false;
    };
    // How the engine reads them (set by the QEMU boundary; false when the
    // registers cannot be read), and the return value (RAX / EAX).
    void set_syscall_reader(std::function<bool(int vcpu, SyscallPath, SyscallRegs&)> reader) {
        read_syscall_regs_ = std::move(reader);
    }
    void set_return_reader(std::function<bool(int vcpu, uint64_t& sp, uint64_t& ret)> reader) {
        read_return_regs_ = std::move(reader);
    }
    // Reads user memory of the running process (clone3's arguments).
    void set_user_reader(std::function<bool(int vcpu, uint64_t va, void* out, size_t n)> r) {
        read_user_ = std::move(r);
    }
    // Where the running thread's i386 fast system calls return (its vDSO's
    // landing pad), set by the introspection layer; false when it cannot
    // be told (a call made through the vDSO is then matched by its code).
    void set_landing_pad_reader(std::function<bool(int vcpu, uint64_t& pc)> r) {
        read_landing_pad_ = std::move(r);
    }
    // Asks the QEMU boundary to call on_syscall_return at `pc` from now on
    // (a return site not right after its instruction).
    void set_return_site_watcher(std::function<void(uint64_t pc)> w) {
        watch_return_site_ = std::move(w);
    }
    // The thread the vCPU runs, as the kernel numbers it (tid: its own id,
    // pid: its thread group's), set by the introspection layer; false when
    // it cannot be told (the events then carry 0).
    void set_thread_reader(std::function<bool(int vcpu, uint64_t& pid, uint64_t& tid)> r) {
        read_thread_ = std::move(r);
    }
    // A system-call instruction of `len` bytes at `pc` is about to enter
    // the kernel: SYSCALL, and the call is remembered for its return.
    void on_syscall(int vcpu, uint64_t pc, uint64_t len, SyscallPath path);
    // The instruction at `pc` follows a system-call instruction: when the
    // running thread's call returns here, SYSCALL_RET.
    void on_syscall_return(int vcpu, uint64_t pc);

    // A memory access completed (one memory_wanted() let through).
    void on_memory(int vcpu, uint64_t pc, bool is_write, uint64_t vaddr, uint64_t paddr,
                   uint64_t size, uint64_t data, uint64_t data_high);

    // --- Monitored processes (any thread). ---
    bool start_monitoring(uint64_t pgd);
    bool stop_monitoring(uint64_t pgd);
    bool is_monitored(uint64_t pgd) const { return monitored_.contains(pgd); }

    uint64_t current_pgd(int vcpu) const;
    bool vcpu_monitored(int vcpu) const;
    int max_vcpus() const { return static_cast<int>(vcpus_.size()); }

    // The pgd the engine uses as process identity for a raw CR3 value.
    uint64_t normalize(uint64_t cr3, PagingMode mode) const;

private:
    struct Pending {
        bool block_end = false;
        bool insn_end = false;
        bool opcode = false;
        bool keyboard = false;
        TbInfo block_tb;
        uint64_t insn_pc = 0;
        uint64_t opcode_pc = 0;
        uint16_t opcode_value = 0;
        bool block_end_monitored = false;
        bool insn_end_monitored = false;
        bool opcode_monitored = false;
    };
    struct Vcpu {
        uint64_t pgd = 0;
        bool monitored = false;
        Pending pending;
        // Code pages executed since the last TLB-flushing CR3 load (TLB_EXEC).
        std::unordered_set<uint64_t> exec_pages;
        // Events of the hottest kinds, built once and updated in place:
        // zeroing a whole Event for every block, instruction or memory
        // access costs more than delivering it to a native trigger. Only
        // this vCPU's thread uses them, and handlers get them as const.
        Event block_event, insn_event, mem_event;
    };

    Event base_event(CallbackType type, int vcpu) const;
    void fire_pending(int vcpu, uint64_t next_pc, bool block_starts);
    void refresh_flags();
    bool any_pending(const Pending& p) const {
        return p.block_end || p.insn_end || p.opcode || p.keyboard;
    }

    CallbackRegistry& registry_;
    MonitoredSet& monitored_;
    VcpuFlags& flags_;
    std::vector<Vcpu> vcpus_;
    std::function<uint8_t(int)> read_keyboard_byte_;
    std::function<bool(int, SyscallPath, SyscallRegs&)> read_syscall_regs_;
    std::function<bool(int, uint64_t&, uint64_t&)> read_return_regs_;
    std::function<bool(int, uint64_t, void*, size_t)> read_user_;
    std::function<bool(int, uint64_t&, uint64_t&)> read_thread_;
    std::function<bool(int, uint64_t&)> read_landing_pad_;
    std::function<void(uint64_t)> watch_return_site_;
    // The running thread's pid and tid into a system-call event.
    void add_thread(Event& e) const;
    // An i386 fast call (Sysenter, Syscall32): `regs`, read as int 0x80
    // passes them, become the call's arguments and user stack pointer (see
    // SyscallPath).
    void fast32_arguments(int vcpu, SyscallPath path, SyscallRegs& regs) const;
    // Where the fast call of `len` bytes at `pc` returns (the vDSO's
    // landing pad); 0 when unknown.
    uint64_t fast32_return(int vcpu, uint64_t pc, uint64_t len) const;
    SyscallTracker syscalls_;
    std::function<std::optional<bool>()> kpti_source_;
    bool kpti_ = false;
    bool kpti_decided_ = false;
    uint64_t kpti_attempts_ = 0, kpti_next_attempt_ = 0;
};

}  // namespace pyrebox
