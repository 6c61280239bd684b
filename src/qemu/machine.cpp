#include "qemu/machine.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "qemu/internals.h"
#include "qemu/plugin_api.h"
#include "qemu/registers.h"

namespace pyrebox::qemu {

namespace {

class SystemMemory final : public vmi::PhysicalMemory {
public:
    bool read(uint64_t paddr, void* buf, size_t len) override { return access(paddr, buf, len, false); }
    bool write(uint64_t paddr, const void* buf, size_t len) override {
        return access(paddr, const_cast<void*>(buf), len, true);
    }

private:
    static bool access(uint64_t paddr, void* buf, size_t len, bool is_write) {
        const auto& q = internals();
        return q.address_space_rw(q.address_space_memory, paddr, 0, buf, len, is_write) == 0;
    }
};

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
        if (is_pc_name(name) || name == "eflags") {
            sync_lazy_state(cpu);
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
        const int n = internals().x86_cpu_gdb_write_register(
            state, reinterpret_cast<uint8_t*>(bytes.data()), regnum);
        if (n <= 0) {
            return Error{"register " + name + " cannot be written"};
        }
        auto& ctx = callback_context();
        if (is_pc_name(name) && ctx.vcpu == cpu) {
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
        sync_lazy_state(cpu);
        char* text = nullptr;
        size_t size = 0;
        FILE* out = open_memstream(&text, &size);
        if (out == nullptr) {
            return Error{"cannot allocate the CPU dump"};
        }
        internals().x86_cpu_dump_state(state, out, 0);
        std::fclose(out);
        std::string result(text, size);
        std::free(text);
        return result;
    }

    vmi::PhysicalMemory& physical_memory() override { return memory_; }

    Expected<std::vector<std::pair<uint64_t, uint64_t>>> memory_map() override {
        const auto& q = internals();
        if (!q.has_memory_map()) {
            return Error{"this QEMU does not export its memory map functions"};
        }
        struct Walk {
            const Internals* q;
            std::vector<std::pair<uint64_t, uint64_t>> ranges;
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

    vmi::PagingMode paging_mode(int cpu) override {
        auto cr0 = read_register(cpu, "cr0");
        auto cr4 = read_register(cpu, "cr4");
        auto efer = read_register(cpu, "efer");
        if (!cr0 || !cr4) {
            return vmi::PagingMode::None;
        }
        return vmi::paging_mode(*cr0, *cr4, efer ? *efer : 0);
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

    std::string pc_name() const { return registers().number("rip") ? "rip" : "eip"; }

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

void sync_lazy_state(int cpu) {
    auto& ctx = callback_context();
    if (ctx.vcpu != cpu || ctx.state_synced || ctx.host_pc == 0) {
        return;
    }
    ctx.state_synced = true;
    internals().cpu_restore_state(internals().qemu_get_cpu(cpu), ctx.host_pc);
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
