#include "qemu/instrumentation.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_set>

#include "engine/engine.h"
#include "app/linux_introspection.h"
#include "qemu/contained.h"
#include "app/linux_kpti.h"
#include "app/machine_resume.h"
#include "app/session.h"
#include "base/x86_insn.h"
#include "qemu/internals.h"
#include "qemu/machine.h"
#include "qemu/registers.h"

namespace pyrebox::qemu {

namespace {

// Per-vCPU words that generated code compares inline.
struct Board {
    uint64_t monitored;
    uint64_t pending;
};

struct State {
    Session* session = nullptr;  // set by install_instrumentation
    qemu_plugin_scoreboard* board = nullptr;
    qemu_plugin_u64 monitored{};
    qemu_plugin_u64 pending{};
    bool is_64bit = true;
    int cr4_regnum = -1;
    int rax_regnum = -1;  // rax / eax
    int rdx_regnum = -1;  // rdx / edx
    // Sites referenced by translated code (udata). Freed when QEMU flushes
    // all translations (nothing can reference them afterwards).
    std::mutex arena_lock;
    std::deque<TbInfo> tbs;
    struct AddrSite { uint64_t pc; const TbInfo* tb; };
    struct OpcodeSite { uint64_t pc; uint16_t opcode; };
    std::deque<AddrSite> addr_sites;
    std::deque<OpcodeSite> opcode_sites;
    struct SyscallSite { uint64_t pc; uint64_t len; SyscallPath path; };
    std::deque<SyscallSite> syscall_sites;
    // Addresses right after a system-call instruction seen translated:
    // where calls return. Kept across flushes (they are the guest's code,
    // not translations); capped, as the guest can make as many as it likes.
    std::unordered_set<uint64_t> return_sites;
    // Start addresses of the blocks translated since the last flush: a
    // return site learnt after its block was translated (a thread that was
    // in the kernel when the call site was first seen) needs that block
    // translated again.
    std::unordered_set<uint64_t> block_starts;
    // gdb register numbers of a system call's registers: the number, the
    // six arguments, the stack pointer; for `syscall` and for the 32-bit
    // paths (whose registers are the low halves on x86-64).
    int syscall_regs64[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    int syscall_regs32[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    int cs_regnum = -1;  // x86-64 only: tells 64-bit code from 32-bit code
};

// The code segment Linux runs 64-bit user code in (__USER_CS); its 32-bit
// programs run in __USER32_CS (0x23) or segments of their own LDT.
constexpr uint64_t kUser64CodeSelector = 0x33;

constexpr size_t kMaxReturnSites = 1 << 20;

// Never destroyed: QEMU's exit callbacks run after static destructors.
State& g = *new State;
bool g_exiting = false;

class ScoreboardFlags final : public VcpuFlags {
public:
    void set_monitored(int vcpu, bool v) override {
        qemu_plugin_u64_set(g.monitored, static_cast<unsigned>(vcpu), v ? 1 : 0);
    }
    void set_pending(int vcpu, bool v) override {
        qemu_plugin_u64_set(g.pending, static_cast<unsigned>(vcpu), v ? 1 : 0);
    }
};

ScoreboardFlags g_flags;

Session& session() { return *g.session; }
Engine& engine() { return *g.session->engine; }

// Enters a callback context for `vcpu`; on leaving, when a callback wrote the
// program counter or state the rest of the block cannot honour, leaves the
// translation block. cpu_loop_exit unwinds with longjmp, so it is called only
// here, in the outermost frame QEMU called, after every C++ frame has returned.
//
// A write that is not a PC write resumes at the same instruction (its state
// is what the next instruction must see): the callbacks at that instruction
// up to and including the one that wrote are not called again there (a
// replay; those after it run, as they had not yet). Callbacks at one
// instruction run in a fixed order and there is one of each kind there (a
// block start, pending events, address-specific, every instruction), so
// the writer is found again by its kind, also in a block translated anew.
// `mid_instruction` marks callbacks that cannot resume at their
// instruction (memory accesses; context switches, which have no pc).
enum class Kind : uint8_t {
    Other, PendingBlock, Block, PendingInsn, ExecAddress, Insn, SyscallReturn, Syscall
};

struct Enter {
    Enter(unsigned vcpu, void* host_pc, Kind kind, uint64_t pc, bool mid_instruction = false) {
        auto& ctx = callback_context();
        ctx.vcpu = static_cast<int>(vcpu);
        ctx.pc_written = false;
        ctx.leave_block = false;
        ctx.host_pc = reinterpret_cast<uintptr_t>(host_pc);
        ctx.materialized = false;
        ctx.exact.valid = false;
        ctx.mid_instruction = mid_instruction;
        ctx.current = CallbackContext::Site{ctx.vcpu, pc, static_cast<uint8_t>(kind)};
        auto& replay = ctx.replay;
        if (__builtin_expect(replay.vcpu >= 0, 0) && kind != Kind::Other) {
            if (replay.vcpu == ctx.vcpu && replay.pc == pc) {
                skip = true;
                if (replay.kind == static_cast<uint8_t>(kind)) {
                    replay.vcpu = -1;  // the writer itself: the replay ends here
                }
            } else {
                replay.vcpu = -1;
            }
        }
    }
    bool skip = false;
};

// The callbacks below are called by QEMU straight from generated code, so
// their return address lies in the block being executed.
#define ENTER(vcpu, ...)                                                      \
    Enter enter((vcpu), __builtin_return_address(0), __VA_ARGS__);            \
    if (__builtin_expect(enter.skip, 0)) {                                    \
        callback_context().vcpu = -1;                                         \
        return;                                                               \
    }

void leave(unsigned vcpu) {
    auto& ctx = callback_context();
    const bool redirect = ctx.pc_written;
    const bool resume_here = ctx.leave_block && !redirect;
    ctx.vcpu = -1;
    ctx.pc_written = false;
    ctx.leave_block = false;
    ctx.host_pc = 0;
    if (resume_here) {
        ctx.replay = ctx.current;
    }
    if (redirect || resume_here) {
        internals().cpu_loop_exit(internals().qemu_get_cpu(static_cast<int>(vcpu)));
    }
}

void cb_pending_tb(unsigned vcpu, void* udata) {
    ENTER(vcpu, Kind::PendingBlock, static_cast<const TbInfo*>(udata)->pc);
    contained("a pending-event callback", [&] {
        engine().on_pending_at_block(static_cast<int>(vcpu), *static_cast<const TbInfo*>(udata));
    });
    leave(vcpu);
}

void cb_block(unsigned vcpu, void* udata) {
    ENTER(vcpu, Kind::Block, static_cast<const TbInfo*>(udata)->pc);
    contained("a block callback", [&] {
        engine().on_block(static_cast<int>(vcpu), *static_cast<const TbInfo*>(udata));
    });
    leave(vcpu);
}

void cb_pending_insn(unsigned vcpu, void* udata) {
    ENTER(vcpu, Kind::PendingInsn, reinterpret_cast<uint64_t>(udata));
    contained("a pending-event callback", [&] {
        engine().on_pending_at_insn(static_cast<int>(vcpu), reinterpret_cast<uint64_t>(udata));
    });
    leave(vcpu);
}

void cb_insn(unsigned vcpu, void* udata) {
    ENTER(vcpu, Kind::Insn, reinterpret_cast<uint64_t>(udata));
    contained("an instruction callback", [&] {
        engine().on_insn(static_cast<int>(vcpu), reinterpret_cast<uint64_t>(udata));
    });
    leave(vcpu);
}

void cb_exec_address(unsigned vcpu, void* udata) {
    const auto* site = static_cast<const State::AddrSite*>(udata);
    ENTER(vcpu, Kind::ExecAddress, site->pc);
    contained("an address callback", [&] {
        engine().on_exec_address(static_cast<int>(vcpu), site->pc, *site->tb);
    });
    leave(vcpu);
}

void cb_opcode(unsigned vcpu, void* udata) {
    const auto* site = static_cast<const State::OpcodeSite*>(udata);
    contained("an opcode callback", [&] {
        engine().on_opcode(static_cast<int>(vcpu), site->pc, site->opcode);
    });
}

uint64_t read_gdb_register(unsigned vcpu, int regnum);

void cb_syscall(unsigned vcpu, void* udata) {
    const auto* site = static_cast<const State::SyscallSite*>(udata);
    ENTER(vcpu, Kind::Syscall, site->pc);
    contained("a system-call callback", [&] {
        engine().on_syscall(static_cast<int>(vcpu), site->pc, site->len, site->path);
    });
    leave(vcpu);
}

void cb_syscall_return(unsigned vcpu, void* udata) {
    const uint64_t pc = reinterpret_cast<uint64_t>(udata);
    ENTER(vcpu, Kind::SyscallReturn, pc);
    contained("a system-call return callback", [&] {
        engine().on_syscall_return(static_cast<int>(vcpu), pc);
    });
    leave(vcpu);
}

uint64_t read_gdb_register(unsigned vcpu, int regnum) {
    static thread_local GByteArray* buf = g_byte_array_new();
    g_byte_array_set_size(buf, 0);
    CPUState* cpu = internals().qemu_get_cpu(static_cast<int>(vcpu));
    const int n = internals().x86_cpu_gdb_read_register(cpu, buf, regnum);
    uint64_t value = 0;
    for (int i = n - 1; i >= 0; --i) {
        value = (value << 8) | buf->data[i];
    }
    return value;
}

// udata: the gdb register number of the source register of `mov cr3, reg`.
void cb_cr3_load(unsigned vcpu, void* udata) {
    const int regnum = static_cast<int>(reinterpret_cast<intptr_t>(udata));
    const uint64_t value = read_gdb_register(vcpu, regnum);
    PagingMode mode = PagingMode::Long4;
    if (!g.is_64bit) {
        const uint64_t cr4 = g.cr4_regnum >= 0 ? read_gdb_register(vcpu, g.cr4_regnum) : 0;
        mode = (cr4 & (1u << 5)) ? PagingMode::Pae : PagingMode::Legacy32;
    }
    ENTER(vcpu, Kind::Other, 0, /*mid_instruction=*/true);  // no pc to resume at
    contained("a context-switch callback", [&] {
        engine().on_cr3_load(static_cast<int>(vcpu), value, mode);
        session().table_from_memory.on_cr3_load(static_cast<int>(vcpu), value);
        session().process_events.on_cr3_load(static_cast<int>(vcpu));
    });
    leave(vcpu);
}

// After a memory access; kWrite: registered for stores (else loads), so
// the kind is known without asking QEMU. The pre-filter runs first: with
// MEM_* callbacks every access of every process comes here, and most are
// wanted by nobody (no monitored process, outside every trigger's window).
template <bool kWrite>
void cb_memory(unsigned vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void* udata) {
    if (!engine().memory_wanted(static_cast<int>(vcpu), kWrite, vaddr)) {
        return;
    }
    const uint64_t size = uint64_t{1} << qemu_plugin_mem_size_shift(info);
    uint64_t paddr = ~uint64_t{0};
    if (const qemu_plugin_hwaddr* hw = qemu_plugin_get_hwaddr(info, vaddr);
        hw != nullptr && !qemu_plugin_hwaddr_is_io(hw)) {
        paddr = qemu_plugin_hwaddr_phys_addr(hw);
    }
    uint64_t data = 0, data_high = 0;
    if (kWrite) {
        const qemu_plugin_mem_value value = qemu_plugin_mem_get_value(info);
        switch (value.type) {
            case QEMU_PLUGIN_MEM_VALUE_U8: data = value.data.u8; break;
            case QEMU_PLUGIN_MEM_VALUE_U16: data = value.data.u16; break;
            case QEMU_PLUGIN_MEM_VALUE_U32: data = value.data.u32; break;
            case QEMU_PLUGIN_MEM_VALUE_U64: data = value.data.u64; break;
            case QEMU_PLUGIN_MEM_VALUE_U128:
                data = value.data.u128.low;
                data_high = value.data.u128.high;
                break;
        }
    }
    ENTER(vcpu, Kind::Other, 0, /*mid_instruction=*/true);
    contained("a memory callback", [&] {
        engine().on_memory(static_cast<int>(vcpu), reinterpret_cast<uint64_t>(udata), kWrite,
                           vaddr, paddr, size, data, data_high);
    });
    leave(vcpu);
}

// The PS/2 controller (i8042): data port, status port and status bits.
constexpr uint16_t kPs2DataPort = 0x60;
constexpr uint16_t kPs2StatusPort = 0x64;
constexpr uint8_t kPs2OutputFull = 0x01;
constexpr uint8_t kPs2MouseData = 0x20;

// Which kind of keyboard-port read an instruction is, decided at translation.
enum class PortRead : uintptr_t { None = 0, Fixed = 1, ThroughDx = 2 };

// `in al, 0x60` (E4 60) reads the keyboard data port; `in al, dx` (EC) does
// when DX holds 0x60 (Linux's i8042 driver keeps the port in a variable).
PortRead keyboard_port_read(const uint8_t* bytes, size_t len) {
    if (len >= 2 && bytes[0] == 0xE4 && bytes[1] == kPs2DataPort) {
        return PortRead::Fixed;
    }
    if (len >= 1 && bytes[0] == 0xEC) {
        return PortRead::ThroughDx;
    }
    return PortRead::None;
}

// Before an instruction that may read the keyboard data port: when it does
// and the controller holds a keyboard byte (not a mouse byte), the engine
// reads AL once the instruction has run. Reading the status port has no
// side effect on QEMU's i8042.
void cb_keyboard_port_read(unsigned vcpu, void* udata) {
    const auto kind = static_cast<PortRead>(reinterpret_cast<uintptr_t>(udata));
    if (kind == PortRead::ThroughDx &&
        (g.rdx_regnum < 0 || (read_gdb_register(vcpu, g.rdx_regnum) & 0xffff) != kPs2DataPort)) {
        return;
    }
    const uint8_t status = internals().cpu_inb(kPs2StatusPort);
    if ((status & kPs2OutputFull) == 0 || (status & kPs2MouseData) != 0) {
        return;
    }
    contained("a keyboard callback", [&] { engine().on_keyboard_read(static_cast<int>(vcpu)); });
}

// x86 encoding order of general registers -> their gdb names.
const char* gpr_name(int encoding, bool is_64bit) {
    static const char* const names64[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp",
                                            "rsi", "rdi", "r8",  "r9",  "r10", "r11",
                                            "r12", "r13", "r14", "r15"};
    static const char* const names32[8] = {"eax", "ecx", "edx", "ebx",
                                           "esp", "ebp", "esi", "edi"};
    if (is_64bit) {
        return names64[encoding & 15];
    }
    return names32[encoding & 7];
}

// An instruction callback for monitored processes, or for every process.
void register_gated(qemu_plugin_insn* insn, qemu_plugin_vcpu_udata_cb_t cb, void* udata,
                    bool every_process) {
    if (every_process) {
        qemu_plugin_register_vcpu_insn_exec_cb(insn, cb, QEMU_PLUGIN_CB_RW_REGS, udata);
    } else {
        qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, cb, QEMU_PLUGIN_CB_RW_REGS,
                                                    QEMU_PLUGIN_COND_NE, g.monitored, 0, udata);
    }
}

// Reads a system call's registers (gdb numbers `regnums`: the number, six
// arguments, the stack pointer); with `narrow` the number and arguments are
// their low 32 bits (a 32-bit call, also from 64-bit code with int 0x80),
// the stack pointer stays whole (it is the thread's, compared at return).
bool read_registers(unsigned vcpu, const int (&regnums)[8], bool narrow, uint64_t (&out)[8]) {
    for (int i = 0; i < 8; ++i) {
        if (regnums[i] < 0) {
            return false;
        }
        const uint64_t value = read_gdb_register(vcpu, regnums[i]);
        out[i] = narrow && i < 7 ? (value & 0xffffffffu) : value;
    }
    return true;
}

void translate_block(qemu_plugin_tb* tb) {
    const auto plan = session().registry.plan();
    const size_t n = qemu_plugin_tb_n_insns(tb);
    if (n == 0) {
        return;
    }
    TbInfo info;
    info.pc = qemu_plugin_tb_vaddr(tb);
    info.icount = n;
    for (size_t i = 0; i < n; ++i) {
        const qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
        info.size += qemu_plugin_insn_size(insn);
        info.last_pc = qemu_plugin_insn_vaddr(insn);
    }

    std::lock_guard<std::mutex> guard(g.arena_lock);
    TbInfo* tb_info = &g.tbs.emplace_back(info);
    if (plan->any_syscall_return()) {
        g.block_starts.insert(info.pc);
    }

    if (plan->any_end_events()) {
        qemu_plugin_register_vcpu_tb_exec_cond_cb(tb, cb_pending_tb, QEMU_PLUGIN_CB_RW_REGS,
                                                  QEMU_PLUGIN_COND_NE, g.pending, 0, tb_info);
    }
    const bool block_all = plan->block_begin_all || plan->block_end_all || plan->tlb_exec_all;
    if (block_all) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, cb_block, QEMU_PLUGIN_CB_RW_REGS, tb_info);
    } else if (plan->block_begin || plan->block_end || plan->tlb_exec) {
        qemu_plugin_register_vcpu_tb_exec_cond_cb(tb, cb_block, QEMU_PLUGIN_CB_RW_REGS,
                                                  QEMU_PLUGIN_COND_NE, g.monitored, 0, tb_info);
    }

    const bool insn_all = plan->insn_begin_all || plan->insn_end_all;
    const bool insn_gated = plan->insn_begin || plan->insn_end;
    const bool insn_end_any = plan->insn_end || plan->insn_end_all;
    bool previous_matched_opcode = false;
    bool previous_port_read = false;
    for (size_t i = 0; i < n; ++i) {
        qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t pc = qemu_plugin_insn_vaddr(insn);
        void* pc_udata = reinterpret_cast<void*>(pc);
        uint8_t bytes[16];
        const size_t len = qemu_plugin_insn_data(insn, bytes, sizeof bytes);

        // Context switches are always tracked: they drive the monitored flag.
        if (const auto source = mov_to_cr3_source(bytes, len, g.is_64bit)) {
            if (const auto regnum = registers().number(gpr_name(*source, g.is_64bit))) {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn, cb_cr3_load, QEMU_PLUGIN_CB_R_REGS,
                    reinterpret_cast<void*>(static_cast<intptr_t>(*regnum)));
            }
        }
        if (i > 0 && (insn_end_any || previous_matched_opcode || previous_port_read)) {
            qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, cb_pending_insn,
                                                        QEMU_PLUGIN_CB_RW_REGS, QEMU_PLUGIN_COND_NE,
                                                        g.pending, 0, pc_udata);
        }
        if (plan->any_syscall_return()) {
            if (g.return_sites.count(pc) != 0) {
                register_gated(insn, cb_syscall_return, pc_udata, plan->syscall_every_process());
            }
        }
        if (plan->exec_addrs.count(pc) != 0) {
            auto* site = &g.addr_sites.emplace_back(State::AddrSite{pc, tb_info});
            qemu_plugin_register_vcpu_insn_exec_cb(insn, cb_exec_address, QEMU_PLUGIN_CB_RW_REGS,
                                                   site);
        }
        if (insn_all) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, cb_insn, QEMU_PLUGIN_CB_RW_REGS, pc_udata);
        } else if (insn_gated) {
            qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, cb_insn, QEMU_PLUGIN_CB_RW_REGS,
                                                        QEMU_PLUGIN_COND_NE, g.monitored, 0,
                                                        pc_udata);
        }
        previous_port_read = false;
        if (plan->keystroke) {
            if (const PortRead kind = keyboard_port_read(bytes, len); kind != PortRead::None) {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn, cb_keyboard_port_read, QEMU_PLUGIN_CB_R_REGS,
                    reinterpret_cast<void*>(static_cast<uintptr_t>(kind)));
                previous_port_read = true;
            }
        }
        previous_matched_opcode = false;
        if (!plan->opcode_ranges.empty()) {
            InsnInfo decoded;
            if (classify(bytes, len, g.is_64bit, decoded) && plan->matches_opcode(decoded.opcode)) {
                auto* site = &g.opcode_sites.emplace_back(State::OpcodeSite{pc, decoded.opcode});
                if (plan->opcode_all) {
                    qemu_plugin_register_vcpu_insn_exec_cb(insn, cb_opcode, QEMU_PLUGIN_CB_R_REGS,
                                                           site);
                } else {
                    qemu_plugin_register_vcpu_insn_exec_cond_cb(
                        insn, cb_opcode, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_COND_NE, g.monitored,
                        0, site);
                }
                previous_matched_opcode = true;
            }
        }
        if (plan->any_syscall()) {
            if (const SyscallPath path = syscall_path(bytes, len, g.is_64bit);
                path != SyscallPath::None) {
                auto* site = &g.syscall_sites.emplace_back(State::SyscallSite{pc, len, path});
                register_gated(insn, cb_syscall, site, plan->syscall_every_process());
                if (g.return_sites.size() < kMaxReturnSites &&
                    g.return_sites.insert(pc + len).second &&
                    g.block_starts.count(pc + len) != 0 &&
                    plan->any_syscall_return()) {
                    request_retranslation();
                }
            }
        }
        // One callback per kind: QEMU attaches each only to the accesses of
        // its kind (a load or a store is known at translation).
        if (plan->mem_read) {
            qemu_plugin_register_vcpu_mem_cb(insn, cb_memory<false>, QEMU_PLUGIN_CB_RW_REGS,
                                             QEMU_PLUGIN_MEM_R, pc_udata);
        }
        if (plan->mem_write) {
            qemu_plugin_register_vcpu_mem_cb(insn, cb_memory<true>, QEMU_PLUGIN_CB_RW_REGS,
                                             QEMU_PLUGIN_MEM_W, pc_udata);
        }
    }
}

void on_tb_translate(qemu_plugin_id_t /*id*/, qemu_plugin_tb* tb) {
    contained("the translation of a block", [&] { translate_block(tb); });
}

void on_flush(qemu_plugin_id_t /*id*/) {
    // All translations are gone: nothing references the sites any more.
    std::lock_guard<std::mutex> guard(g.arena_lock);
    g.tbs.clear();
    g.addr_sites.clear();
    g.opcode_sites.clear();
    g.syscall_sites.clear();
    g.block_starts.clear();
}

void init_vcpu(unsigned int vcpu);

void on_vcpu_init(qemu_plugin_id_t /*id*/, unsigned int vcpu) {
    contained("a vCPU's start", [&] { init_vcpu(vcpu); });
}

void init_vcpu(unsigned int vcpu) {
    registers().capture();
    if (g.cr4_regnum < 0) {
        g.cr4_regnum = registers().number("cr4").value_or(-1);
        g.rax_regnum = registers().number(g.is_64bit ? "rax" : "eax").value_or(-1);
        g.rdx_regnum = registers().number(g.is_64bit ? "rdx" : "edx").value_or(-1);
        static const char* const names64[8] = {"rax", "rdi", "rsi", "rdx",
                                               "r10", "r8",  "r9",  "rsp"};
        static const char* const names32_on64[8] = {"rax", "rbx", "rcx", "rdx",
                                                    "rsi", "rdi", "rbp", "rsp"};
        static const char* const names32[8] = {"eax", "ebx", "ecx", "edx",
                                               "esi", "edi", "ebp", "esp"};
        if (g.is_64bit) {
            g.cs_regnum = registers().number("cs").value_or(-1);
        }
        for (int i = 0; i < 8; ++i) {
            if (g.is_64bit) {
                g.syscall_regs64[i] = registers().number(names64[i]).value_or(-1);
                g.syscall_regs32[i] = registers().number(names32_on64[i]).value_or(-1);
            } else {
                g.syscall_regs32[i] = registers().number(names32[i]).value_or(-1);
            }
        }
    }
    g_flags.set_monitored(static_cast<int>(vcpu), false);
    g_flags.set_pending(static_cast<int>(vcpu), false);
}

void flush_work(CPUState* cpu, uint64_t /*data*/) { internals().tb_flush(cpu); }

// QEMU's main loop, BQL held: the VM starts or stops.
void on_vm_state_change(void* /*opaque*/, bool running, int /*run_state*/) {
    if (running && !g_exiting) {
        contained("the VM's resume", [] { on_machine_resume(session()); });
    }
}

}  // namespace

void stop_instrumentation() { g_exiting = true; }

void request_retranslation() {
    if (g_exiting) {
        return;  // QEMU is exiting: nothing will run translated code again
    }
    // From inside a callback, the vCPU running it must leave its current
    // block at once (it is the one about to execute the changed code); from
    // elsewhere any vCPU will do: the flush reaches them all.
    const int current = callback_context().vcpu;
    CPUState* cpu = internals().qemu_get_cpu(current >= 0 ? current : 0);
    if (cpu == nullptr) {
        return;  // no vCPU yet, so nothing is translated
    }
    session().flushes_requested.fetch_add(1, std::memory_order_relaxed);
    internals().async_run_on_cpu(cpu, flush_work, 0);
}

void install_instrumentation(Session& s, qemu_plugin_id_t id, int max_vcpus, bool is_64bit) {
    g.session = &s;
    g.is_64bit = is_64bit;
    g.board = qemu_plugin_scoreboard_new(sizeof(Board));
    g.monitored = qemu_plugin_u64{g.board, offsetof(Board, monitored)};
    g.pending = qemu_plugin_u64{g.board, offsetof(Board, pending)};

    s.is_64bit = is_64bit;
    s.machine = &machine();
    s.engine = std::make_unique<Engine>(s.registry, s.monitored, g_flags, max_vcpus);
    s.registry.set_change_listener([] {
        session().process_events.on_plan(*session().registry.plan());
        request_retranslation();
    });
    s.engine->set_kpti_source([] { return linux_kpti(session()); });
    s.engine->set_keyboard_byte_reader([](int vcpu) {
        return g.rax_regnum < 0
                   ? uint8_t{0}
                   : static_cast<uint8_t>(read_gdb_register(static_cast<unsigned>(vcpu),
                                                            g.rax_regnum));
    });

    s.engine->set_syscall_reader([](int vcpu, SyscallPath path, Engine::SyscallRegs& regs) {
        const auto cpu = static_cast<unsigned>(vcpu);
        bool wide = path == SyscallPath::Syscall;
        if (wide && g.cs_regnum >= 0 && read_gdb_register(cpu, g.cs_regnum) != kUser64CodeSelector) {
            wide = false;  // `syscall` from a 32-bit code segment: the compat entry
            regs.code32 = true;
        }
        uint64_t values[8];
        if (!read_registers(cpu, wide ? g.syscall_regs64 : g.syscall_regs32, !wide, values)) {
            return false;
        }
        regs.number = values[0];
        std::copy(values + 1, values + 7, regs.args);
        regs.sp = values[7];
        return true;
    });
    s.engine->set_return_site_watcher([](uint64_t pc) {
        std::lock_guard<std::mutex> guard(g.arena_lock);
        if (g.return_sites.size() < kMaxReturnSites && g.return_sites.insert(pc).second &&
            g.block_starts.count(pc) != 0) {
            request_retranslation();
        }
    });
    s.engine->set_landing_pad_reader([](int vcpu, uint64_t& pc) {
        return linux_compat_landing_pad(session(), vcpu, pc);
    });
    s.engine->set_return_reader([](int vcpu, uint64_t& sp, uint64_t& ret) {
        // The stack pointer and RAX are the same registers on every path;
        // 32-bit calls compare and return their low halves.
        const int* regs = g.is_64bit ? g.syscall_regs64 : g.syscall_regs32;
        if (regs[0] < 0 || regs[7] < 0) {
            return false;
        }
        sp = read_gdb_register(static_cast<unsigned>(vcpu), regs[7]);
        ret = read_gdb_register(static_cast<unsigned>(vcpu), regs[0]);
        return true;
    });
    s.engine->set_thread_reader([](int vcpu, uint64_t& pid, uint64_t& tid) {
        return linux_current_thread(session(), vcpu, pid, tid);
    });
    s.engine->set_user_reader([](int /*vcpu*/, uint64_t va, void* out, size_t n) {
        // Called on the vCPU thread inside its callback: QEMU reads with that
        // vCPU's page tables.
        static thread_local GByteArray* buf = g_byte_array_new();
        g_byte_array_set_size(buf, 0);
        if (!qemu_plugin_read_memory_vaddr(va, buf, n) || buf->len < n) {
            return false;
        }
        std::memcpy(out, buf->data, n);
        return true;
    });

    internals().qemu_add_vm_change_state_handler(on_vm_state_change, nullptr);
    qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_flush_cb(id, on_flush);
}

}  // namespace pyrebox::qemu
