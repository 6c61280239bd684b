#include "qemu/machine.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>

#include "qemu/internals.h"
#include "qemu/plugin_api.h"
#include "qemu/registers.h"

namespace pyrebox::qemu {

// EFLAGS as the CPU sees them, from env as it is now (defined below).
uint64_t current_eflags(CPUState* state);

namespace {

// The target's register width: x86_64's table has rax, i386's eax.
bool wide_target() { return registers().number("rax").has_value(); }
size_t word_size() { return wide_target() ? 8 : 4; }
const char* pc_name() { return wide_target() ? "rip" : "eip"; }

// QEMU's CPU state dump (the text `x86_cpu_dump_state` prints).
std::optional<std::string> dump_text(CPUState* state) {
    char* text = nullptr;
    size_t size = 0;
    FILE* out = open_memstream(&text, &size);
    if (out == nullptr) {
        return std::nullopt;
    }
    internals().x86_cpu_dump_state(state, out, 0);
    std::fclose(out);
    std::string result(text, size);
    std::free(text);
    return result;
}

using RamRanges = std::vector<std::pair<uint64_t, uint64_t>>;

// The guest-physical [start, end) ranges backed by RAM or ROM, sorted and
// merged (QEMU's flat view of system memory, MMIO left out).
Expected<RamRanges> ram_ranges() {
    const auto& q = internals();
    if (!q.has_memory_map()) {
        return Error{"this QEMU does not export its memory map functions"};
    }
    struct Walk {
        const Internals* q;
        RamRanges ranges;
    } walk{&q, {}};
    void* view = q.address_space_get_flatview(q.address_space_memory);
    q.flatview_for_each_range(
        view,
        [](unsigned __int128 start, unsigned __int128 len, const void* mr, uint64_t,
           void* opaque) -> bool {
            auto* w = static_cast<Walk*>(opaque);
            constexpr uint64_t kRamAddrInvalid = ~uint64_t{0};
            if (len == 0 || w->q->memory_region_get_ram_addr(mr) == kRamAddrInvalid) {
                return false;  // MMIO or an alias-less hole: not memory
            }
            auto s = static_cast<uint64_t>(start);
            auto e = static_cast<uint64_t>(start + len);
            if (!w->ranges.empty() && w->ranges.back().second == s) {
                w->ranges.back().second = e;
            } else {
                w->ranges.emplace_back(s, e);
            }
            return false;  // false: keep iterating
        },
        &walk);
    q.flatview_unref(view);
    return std::move(walk.ranges);
}

bool covers(const RamRanges& ranges, uint64_t paddr, uint64_t end) {
    auto after = std::upper_bound(ranges.begin(), ranges.end(), paddr,
                                  [](uint64_t a, const auto& r) { return a < r.first; });
    return after != ranges.begin() && end <= std::prev(after)->second;
}

// Guest-physical memory: RAM and ROM only. Device registers are not memory,
// and reading them can change the device (a hostile guest's page tables or
// a script's address can point there): such an access fails, as an address
// outside memory does. The memory map is kept and read again when an
// access falls outside it (RAM added since).
class SystemMemory final : public PhysicalMemory {
public:
    bool read(uint64_t paddr, void* buf, size_t len) override {
        return in_memory(paddr, len) && access(paddr, buf, len, false);
    }
    bool write(uint64_t paddr, const void* buf, size_t len) override {
        return in_memory(paddr, len) && access(paddr, const_cast<void*>(buf), len, true);
    }

private:
    bool in_memory(uint64_t paddr, size_t len) {
        const uint64_t end = paddr + len;
        if (len == 0) {
            return true;
        }
        if (end < paddr) {
            return false;
        }
        auto known = std::atomic_load(&ranges_);
        if (known && covers(*known, paddr, end)) {
            return true;
        }
        auto fresh = ram_ranges();
        if (!fresh) {
            return true;  // no memory map in this QEMU: as it reads
        }
        auto ranges = std::make_shared<const RamRanges>(std::move(*fresh));
        std::atomic_store(&ranges_, ranges);
        return covers(*ranges, paddr, end);
    }

    static bool access(uint64_t paddr, void* buf, size_t len, bool is_write) {
        const auto& q = internals();
        return q.address_space_rw(q.address_space_memory, paddr, 0, buf, len, is_write) == 0;
    }

    std::shared_ptr<const RamRanges> ranges_;
};

// Registers the generated code reloads from env after a callback (the
// general registers are TCG globals; x87, SSE and MXCSR live in env and are
// read there): a write to them inside a block takes effect from the next
// instruction without leaving the block. Everything else (EIP, EFLAGS'
// lazy state, segments, control registers, EFER) is baked into the block.
bool kept_by_block_code(const std::string& name) {
    static const char* const plain[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                        "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15",
                                        "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp",
                                        "mxcsr"};
    for (const char* p : plain) {
        if (name == p) {
            return true;
        }
    }
    return name.rfind("st", 0) == 0 || name.rfind("xmm", 0) == 0 || name.rfind("ymm", 0) == 0 ||
           (name.size() > 1 && name[0] == 'f' && name != "fs" && name != "fs_base");
}

bool is_pc_name(const std::string& name) {
    std::string lower;
    for (char c : name) {
        lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return lower == "rip" || lower == "eip" || lower == "pc";
}

class QemuMachineImpl final : public Machine {
public:
    int num_cpus() const override { return qemu_plugin_num_vcpus(); }

    std::vector<std::string> register_names() const override { return registers().names(); }

    Expected<std::string> read_register_bytes(int cpu, const std::string& name) override {
        auto [state, regnum] = locate(cpu, name);
        if (!state) {
            return Error{regnum_error_};
        }
        const size_t width = word_size();
        if (is_pc_name(name) || name == "eflags") {
            if (const ExactState* exact = exact_state(cpu)) {
                const uint64_t value = is_pc_name(name) ? exact->pc : exact->eflags;
                return std::string(reinterpret_cast<const char*>(&value), width);
            }
        }
        if (name == "eflags") {
            const uint64_t value = current_eflags(state);
            return std::string(reinterpret_cast<const char*>(&value), width);
        }
        GByteArray* buf = g_byte_array_new();
        const int n = internals().x86_cpu_gdb_read_register(state, buf, regnum);
        std::string bytes(reinterpret_cast<const char*>(buf->data), n > 0 ? static_cast<size_t>(n) : 0);
        g_byte_array_free(buf, true);
        if (n <= 0) {
            return Error{"register " + name + " cannot be read"};
        }
        return bytes;
    }

    Expected<uint64_t> read_register(int cpu, const std::string& name) override {
        auto bytes = read_register_bytes(cpu, name);
        if (!bytes) {
            return Error{bytes.error()};
        }
        uint64_t value = 0;
        std::memcpy(&value, bytes->data(), std::min<size_t>(bytes->size(), 8));
        return value;
    }

    Expected<bool> write_register(int cpu, const std::string& name, uint64_t value) override {
        auto [state, regnum] = locate(cpu, name == "pc" || name == "PC" ? pc_name() : name);
        if (!state) {
            return Error{regnum_error_};
        }
        // Write the register's own width: read it first to learn it.
        auto current = read_register_bytes(cpu, registers().names()[static_cast<size_t>(regnum)]);
        if (!current) {
            return Error{current.error()};
        }
        std::string bytes = *current;
        std::memcpy(bytes.data(), &value, std::min<size_t>(bytes.size(), 8));
        auto& ctx = callback_context();
        const std::string& reg = registers().names()[static_cast<size_t>(regnum)];
        const bool in_block = ctx.vcpu == cpu && ctx.host_pc != 0;
        const bool pc = is_pc_name(reg);
        if (in_block && (pc || !kept_by_block_code(reg))) {
            if (!pc && ctx.mid_instruction) {
                return Error{"register " + name + " cannot be written from this callback: it "
                             "runs in the middle of an instruction; write it from an "
                             "INSN_BEGIN, INSN_END, OPCODE_RANGE or BLOCK_BEGIN callback"};
            }
            // The rest of the block's code assumes the state it translated
            // with: make env exact for the current instruction, write, and
            // leave the block when the callback returns (at the new PC, or
            // at this instruction with the written state).
            materialize_state(cpu);
            ctx.leave_block = true;
        }
        if (reg == "eflags") {
            void* env = cpu_env(state);
            if (env == nullptr || internals().cpu_load_eflags == nullptr) {
                return Error{"register " + name + " cannot be written: this QEMU does not "
                             "export cpu_load_eflags, or its vCPU layout was not recognised"};
            }
            // Arithmetic flags and DF go to their own state; env->eflags
            // keeps the rest.
            constexpr int kArithmeticAndDf = 0x8d5 | 0x400;
            internals().cpu_load_eflags(env, static_cast<int>(value), ~kArithmeticAndDf);
            ctx.exact.valid = false;
            return true;
        }
        const int n = internals().x86_cpu_gdb_write_register(
            state, reinterpret_cast<uint8_t*>(bytes.data()), regnum);
        if (n <= 0) {
            return Error{"register " + name + " cannot be written"};
        }
        ctx.exact.valid = false;
        if (pc && in_block) {
            ctx.pc_written = true;
        }
        return true;
    }

    bool in_callback() const override { return callback_context().vcpu >= 0; }

    Expected<std::string> dump_state(int cpu) override {
        CPUState* state = internals().qemu_get_cpu(cpu);
        if (state == nullptr) {
            return Error{"no vCPU " + std::to_string(cpu)};
        }
        std::optional<std::string> dump;
        with_exact_state(cpu, [&] { dump = dump_text(state); });
        if (!dump) {
            return Error{"cannot allocate the CPU dump"};
        }
        return std::move(*dump);
    }

    PhysicalMemory& physical_memory() override { return memory_; }

    Expected<std::vector<std::pair<uint64_t, uint64_t>>> memory_map() override {
        return ram_ranges();
    }

    PagingMode paging_mode(int cpu) override {
        auto cr0 = read_register(cpu, "cr0");
        auto cr4 = read_register(cpu, "cr4");
        auto efer = read_register(cpu, "efer");
        if (!cr0 || !cr4) {
            return PagingMode::None;
        }
        return pyrebox::paging_mode(*cr0, *cr4, efer ? *efer : 0);
    }

    Expected<uint64_t> io_read(uint32_t port, int size) override {
        const auto& q = internals();
        switch (size) {
            case 1: return static_cast<uint64_t>(q.cpu_inb(port));
            case 2: return static_cast<uint64_t>(q.cpu_inw(port));
            case 4: return static_cast<uint64_t>(q.cpu_inl(port));
        }
        return Error{"I/O port access size " + std::to_string(size) + " is not 1, 2 or 4"};
    }

    Expected<bool> io_write(uint32_t port, int size, uint64_t value) override {
        const auto& q = internals();
        switch (size) {
            case 1: q.cpu_outb(port, static_cast<uint8_t>(value)); return true;
            case 2: q.cpu_outw(port, static_cast<uint16_t>(value)); return true;
            case 4: q.cpu_outl(port, static_cast<uint32_t>(value)); return true;
        }
        return Error{"I/O port access size " + std::to_string(size) + " is not 1, 2 or 4"};
    }

    int callback_vcpu() const override { return callback_context().vcpu; }

    // QEMU's exclusive sections require the caller not to count as running
    // guest code: leave that state (cpu_exec_end), wait for every other vCPU
    // to leave guest code (start_exclusive), and undo both in reverse order.
    bool freeze_other_vcpus() override {
        const auto& q = internals();
        const int vcpu = callback_context().vcpu;
        if (vcpu < 0 || !q.has_exclusive() || frozen_vcpu_ >= 0) {
            return false;
        }
        CPUState* state = q.qemu_get_cpu(vcpu);
        if (state == nullptr) {
            return false;
        }
        q.cpu_exec_end(state);
        q.start_exclusive();
        frozen_vcpu_ = vcpu;
        return true;
    }

    void thaw_other_vcpus() override {
        const auto& q = internals();
        if (frozen_vcpu_ < 0 || callback_context().vcpu != frozen_vcpu_) {
            return;
        }
        CPUState* state = q.qemu_get_cpu(frozen_vcpu_);
        frozen_vcpu_ = -1;
        q.end_exclusive();
        q.cpu_exec_start(state);
    }

    bool stop_guest_clock() override {
        return with_bql([](const Internals& q) { q.cpu_disable_ticks(); });
    }

    // The ticks are enabled again only while the VM is still running. A
    // savevm or loadvm queued from the shell has QEMU's main loop already
    // inside vm_stop, waiting for this vCPU to leave the callback: the run
    // state says stopped, and the ticks must stay disabled, as QEMU's own
    // stop leaves them. QEMU saves and loads the clock offsets without the
    // enabled flag, reading them as a stopped VM's; enabling them here would
    // save "offset from the host clock" where "guest time" is expected (the
    // restored guest's clock then reads far in the past and no timer fires),
    // or load guest time where an offset is expected (a jump by the host's
    // uptime). vm_start enables them when that stop ends.
    void start_guest_clock() override {
        with_bql([](const Internals& q) {
            if (q.runstate_is_running()) {
                q.cpu_enable_ticks();
            }
        });
    }

private:
    // Runs `fn` with QEMU's big lock, taken only for that call (vCPU threads
    // run guest code without it). QEMU's tick switches are idempotent.
    template <typename Fn>
    bool with_bql(Fn fn) {
        const auto& q = internals();
        if (!q.has_clock_control()) {
            return false;
        }
        const bool locked = q.bql_locked();
        if (!locked) {
            q.bql_lock_impl(__FILE__, __LINE__);
        }
        fn(q);
        if (!locked) {
            q.bql_unlock();
        }
        return true;
    }

    std::pair<CPUState*, int> locate(int cpu, const std::string& name) {
        if (!registers().captured()) {
            regnum_error_ = "registers are not available before the first vCPU starts";
            return {nullptr, 0};
        }
        auto regnum = registers().number(name);
        if (!regnum) {
            regnum_error_ = "unknown register '" + name + "'";
            return {nullptr, 0};
        }
        CPUState* state = cpu >= 0 ? internals().qemu_get_cpu(cpu) : nullptr;
        if (state == nullptr) {
            regnum_error_ = "no vCPU " + std::to_string(cpu) + " (this VM has " +
                            std::to_string(num_cpus()) + ")";
            return {nullptr, 0};
        }
        return {state, *regnum};
    }

    SystemMemory memory_;
    int frozen_vcpu_ = -1;  // the vCPU holding the exclusive section, or -1
    static thread_local std::string regnum_error_;
};

thread_local std::string QemuMachineImpl::regnum_error_;

}  // namespace

namespace {

// Inside a translation block QEMU keeps env->eip and the flags' cc_op
// lazily: the generated code for the rest of the block assumes the values
// it left there (with PC-relative blocks it adds deltas to env->eip).
// cpu_restore_state makes both exact for the instruction being executed,
// and that changes env. To read without changing anything, the bytes of
// env it may write (eip, eflags, the cc_* words, cc_op, df, hflags: 56
// bytes on x86_64, 36 on i386, all right after eip, and touched by this
// vCPU's thread only) are copied first and put back afterwards.
// Under -icount it also hands the block's unexecuted instructions back to
// the vCPU's budget (as when a block is abandoned), which would stop the
// guest's clock under frequent reads: the budget's low half
// (icount_decr.u16.low, written by this vCPU's thread only; the high half is
// other threads' exit request and is never touched) is put back too. It is
// the first word of CPUState's last member before env (QEMU checks at build
// time that env follows it with no gap): 8 bytes before env->regs[].
constexpr size_t kLazyWindow = 64;
constexpr ptrdiff_t kIcountLowBeforeEnv = 8;
// How far into the vCPU object env->regs[] is looked for (env follows
// QEMU's CPUState: at 11,328 bytes of a 27,160-byte object in QEMU 10.0).
constexpr size_t kEnvSearchLimit = 64 * 1024;

// env->regs[] in QEMU's order (R_EAX, R_ECX, R_EDX, R_EBX, R_ESP, R_EBP,
// R_ESI, R_EDI, R8..R15), then env->eip: where the gdb view's registers
// sit in the vCPU object.
const char* const kEnvOrder64[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                   "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
const char* const kEnvOrder32[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};

bool gdb_read(CPUState* state, int regnum, std::string& out) {
    GByteArray* buf = g_byte_array_new();
    const int n = internals().x86_cpu_gdb_read_register(state, buf, regnum);
    out.assign(reinterpret_cast<const char*>(buf->data), n > 0 ? static_cast<size_t>(n) : 0);
    g_byte_array_free(buf, true);
    return n > 0;
}

uint64_t gdb_value(CPUState* state, int regnum) {
    std::string bytes;
    uint64_t value = 0;
    if (gdb_read(state, regnum, bytes)) {
        std::memcpy(&value, bytes.data(), std::min<size_t>(bytes.size(), 8));
    }
    return value;
}

// Offset of env->eip in the vCPU object, found once from the live values of
// the general registers and EIP (every vCPU object has the same layout);
// -1 when not found (reads then put EIP back through the gdb view and leave
// cc_op at the instruction's value, which the block's code also expects
// unless the instruction changed it before a memory access).
std::atomic<ptrdiff_t> g_eip_offset{-2};  // -2: not searched yet

ptrdiff_t find_eip_offset(CPUState* state) {
    const bool wide = wide_target();
    const size_t word = word_size();
    std::string pattern;
    const size_t count = wide ? std::size(kEnvOrder64) : std::size(kEnvOrder32);
    for (size_t i = 0; i < count; ++i) {
        std::string bytes;
        auto regnum = registers().number(wide ? kEnvOrder64[i] : kEnvOrder32[i]);
        if (!regnum || !gdb_read(state, *regnum, bytes) || bytes.size() != word) {
            return -1;
        }
        pattern += bytes;
    }
    std::string eip;
    auto pc = registers().number(pc_name());
    if (!pc || !gdb_read(state, *pc, eip) || eip.size() != word) {
        return -1;
    }
    pattern += eip;
    // The vCPU object is one heap block (QEMU's object_new): never look
    // past its end.
    const size_t limit = std::min(kEnvSearchLimit, malloc_usable_size(state));
    const auto* base = reinterpret_cast<const uint8_t*>(state);
    for (size_t off = 0; off + pattern.size() <= limit; off += word) {
        if (std::memcmp(base + off, pattern.data(), pattern.size()) == 0) {
            return static_cast<ptrdiff_t>(off + pattern.size() - word);
        }
    }
    return -1;
}

uint8_t* lazy_window(CPUState* state) {
    // A search from a thread other than the vCPU's while it runs can see
    // registers change under it: a miss is retried a few times before the
    // layout counts as unrecognised.
    static std::atomic<int> misses{0};
    constexpr int kMaxMisses = 16;
    ptrdiff_t off = g_eip_offset.load(std::memory_order_relaxed);
    if (off == -2) {
        off = find_eip_offset(state);
        if (off >= 0 || misses.fetch_add(1) + 1 >= kMaxMisses) {
            g_eip_offset.store(off, std::memory_order_relaxed);
        }
    }
    return off < 0 ? nullptr : reinterpret_cast<uint8_t*>(state) + off;
}

}  // namespace

void* cpu_env(CPUState* state) {
    uint8_t* eip = lazy_window(state);
    if (eip == nullptr) {
        return nullptr;
    }
    // env starts with regs[]: 16 words on x86_64, 8 on i386, then eip.
    return eip - (wide_target() ? 16 * 8 : 8 * 4);
}

uint64_t current_eflags(CPUState* state) {
    const auto flags = registers().number("eflags");
    const uint64_t raw = flags ? gdb_value(state, *flags) : 0;  // env->eflags
    void* env = cpu_env(state);
    if (env != nullptr && internals().helper_read_eflags != nullptr) {
        constexpr uint64_t kVmRf = 0x20000 | 0x10000;
        return internals().helper_read_eflags(env) | (raw & kVmRf);
    }
    // QEMU's own dump prints the computed value.
    if (const auto dump = dump_text(state)) {
        for (const char* key : {"RFL=", "EFL="}) {
            if (auto at = dump->find(key); at != std::string::npos) {
                return std::strtoull(dump->c_str() + at + 4, nullptr, 16);
            }
        }
    }
    return raw;
}

void with_exact_state(int cpu, const std::function<void()>& fn) {
    auto& ctx = callback_context();
    CPUState* state = internals().qemu_get_cpu(cpu);
    if (ctx.vcpu != cpu || ctx.materialized || ctx.host_pc == 0 || state == nullptr) {
        fn();  // env is exact already (VM stopped, or made exact for a write)
        return;
    }
    uint8_t* window = lazy_window(state);
    uint8_t saved[kLazyWindow];
    auto* icount_low = window == nullptr
                           ? nullptr
                           : static_cast<uint8_t*>(cpu_env(state)) - kIcountLowBeforeEnv;
    uint16_t saved_icount = 0;
    if (icount_low != nullptr) {
        std::memcpy(&saved_icount, icount_low, sizeof saved_icount);
    }
    const auto pc = registers().number(pc_name());
    std::string raw_eip;
    if (window != nullptr) {
        std::memcpy(saved, window, kLazyWindow);
    } else if (pc) {
        gdb_read(state, *pc, raw_eip);
    }
    const bool restored = internals().cpu_restore_state(state, ctx.host_pc);
    fn();
    if (restored) {
        if (window != nullptr) {
            std::memcpy(window, saved, kLazyWindow);
            std::memcpy(icount_low, &saved_icount, sizeof saved_icount);
        } else if (pc && !raw_eip.empty()) {
            internals().x86_cpu_gdb_write_register(
                state, reinterpret_cast<uint8_t*>(raw_eip.data()), *pc);
        }
    }
}

const ExactState* exact_state(int cpu) {
    auto& ctx = callback_context();
    if (ctx.vcpu != cpu || ctx.materialized || ctx.host_pc == 0) {
        return nullptr;
    }
    if (!ctx.exact.valid) {
        CPUState* state = internals().qemu_get_cpu(cpu);
        const auto pc = registers().number(pc_name());
        if (state == nullptr || !pc) {
            return nullptr;
        }
        with_exact_state(cpu, [&] {
            ctx.exact.pc = gdb_value(state, *pc);
            ctx.exact.eflags = current_eflags(state);
        });
        ctx.exact.valid = true;
    }
    return &ctx.exact;
}

void materialize_state(int cpu) {
    auto& ctx = callback_context();
    CPUState* state = internals().qemu_get_cpu(cpu);
    if (ctx.vcpu != cpu || ctx.materialized || ctx.host_pc == 0 || state == nullptr) {
        return;
    }
    internals().cpu_restore_state(state, ctx.host_pc);
    ctx.materialized = true;
    ctx.exact.valid = false;
}

CallbackContext& callback_context() {
    // initial-exec: read at every callback; the default model for a
    // dlopen'ed plugin calls __tls_get_addr each time.
    static thread_local CallbackContext ctx __attribute__((tls_model("initial-exec")));
    return ctx;
}

Machine& machine() {
    // Never destroyed: used by exit paths that run after static destructors.
    static QemuMachineImpl* instance = new QemuMachineImpl;
    return *instance;
}

}  // namespace pyrebox::qemu
