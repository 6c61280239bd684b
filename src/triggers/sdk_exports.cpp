// The trigger SDK's functions (include/pyrebox/sdk/*.h), exported by the
// plugin with C linkage. Triggers call them from trigger(), on the event's
// vCPU thread. Values of the target's word size (pyrebox_target_ulong) are
// 4 bytes on qemu-system-i386: arguments are truncated and stores through
// pointers write that width.
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/console.h"
#include "app/session.h"
#include "triggers/sdk_session.h"
#include "triggers/trigger_call.h"
#include "triggers/trigger_functions.h"
#include "triggers/trigger_variables.h"
#include "vmi/paging.h"

#define SDK_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// The SDK's session (sdk_session.h).
pyrebox::Session* g_session = nullptr;
pyrebox::Session& session() { return *g_session; }

using pyrebox::triggers::TriggerCpu;
using pyrebox::triggers::variables;
using pyrebox::triggers::VarKind;

bool wide() { return session().is_64bit; }
uint64_t word(uint64_t v) { return wide() ? v : (v & 0xffffffffu); }

void store_word(void* out, uint64_t value) {
    if (wide()) {
        std::memcpy(out, &value, 8);
    } else {
        const auto narrow = static_cast<uint32_t>(value);
        std::memcpy(out, &narrow, 4);
    }
}

const TriggerCpu* cpu_of(void* opaque) { return static_cast<const TriggerCpu*>(opaque); }

// register_num_t -> register names, per target (see qemu_glue.h).
const char* const kRegs64[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "rip",
                               "eflags", "es", "cs", "ss", "ds", "fs", "gs", "", "", "", "",
                               "cr0", "", "cr2", "cr3", "cr4", "", "r8", "r9", "r10", "r11",
                               "r12", "r13", "r14", "r15"};
const char* const kRegs32[] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip",
                               "eflags", "es", "cs", "ss", "ds", "fs", "gs", "", "", "", "",
                               "cr0", "", "cr2", "cr3", "cr4", ""};
constexpr int kRnCr1 = 21;
constexpr int kRnCpuIndex = 25;

}  // namespace

void pyrebox::triggers::set_sdk_session(Session& session) { g_session = &session; }

SDK_EXPORT void* get_var(unsigned handle, const char* key) {
    return variables().get_cached(handle, key);
}

SDK_EXPORT void set_var(unsigned handle, const char* key, void* value) {
    variables().set(handle, key, value, VarKind::Pointer);
}

SDK_EXPORT void delete_var(unsigned handle, const char* key, int free_value) {
    variables().remove(handle, key, free_value != 0);
}

SDK_EXPORT void erase_trigger_vars(unsigned handle) { variables().erase(handle); }

SDK_EXPORT void set_var_uint(unsigned handle, const char* key, uint64_t value) {
    variables().set_uint(handle, key, word(value), wide() ? 8 : 4);
}

SDK_EXPORT void set_var_str(unsigned handle, const char* key, const char* value) {
    variables().set_str(handle, key, value);
}

SDK_EXPORT void declare_function(unsigned handle, const char* name,
                                 pyrebox::triggers::TriggerFunction function) {
    pyrebox::triggers::declare(handle, name, function);
}

namespace {
void print_formatted(const char* prefix, const char* format, va_list args) {
    char buf[4096];
    std::vsnprintf(buf, sizeof buf, format, args);
    pyrebox::console().write_lines(prefix, buf);
}
}  // namespace

SDK_EXPORT void utils_print(const char* format, ...) {
    va_list args;
    va_start(args, format);
    print_formatted("[trigger] ", format, args);
    va_end(args);
}

SDK_EXPORT void utils_print_error(const char* format, ...) {
    va_list args;
    va_start(args, format);
    print_formatted("[trigger] error: ", format, args);
    va_end(args);
}

SDK_EXPORT int read_register_convert(void* cpu, int reg, void* out) {
    const TriggerCpu* c = cpu_of(cpu);
    if (c == nullptr || session().machine == nullptr) {
        return -1;
    }
    if (reg == kRnCpuIndex) {
        store_word(out, static_cast<uint64_t>(c->cpu_index));
        return 0;
    }
    if (reg == kRnCr1) {
        store_word(out, 0);
        return 0;
    }
    const int count = wide() ? static_cast<int>(std::size(kRegs64)) : static_cast<int>(std::size(kRegs32));
    const char* name = reg >= 0 && reg < count ? (wide() ? kRegs64 : kRegs32)[reg] : "";
    if (*name == '\0') {
        return -1;
    }
    if (std::strcmp(name, "rip") == 0 || std::strcmp(name, "eip") == 0) {
        store_word(out, c->pc);
        return 0;
    }
    auto value = session().machine->read_register(c->cpu_index, name);
    if (!value) {
        return -1;
    }
    store_word(out, *value);
    return 0;
}

SDK_EXPORT int qemu_physical_memory_rw(uint64_t addr, uint8_t* buf, uint64_t len, int is_write) {
    auto& memory = session().machine->physical_memory();
    const bool ok = is_write ? memory.write(word(addr), buf, word(len))
                             : memory.read(word(addr), buf, word(len));
    return ok ? 0 : -1;
}

SDK_EXPORT int qemu_virtual_memory_rw_with_pgd(uint64_t pgd, uint64_t addr, uint8_t* buf,
                                               uint64_t len, int is_write) {
    auto& machine = *session().machine;
    const auto mode = machine.paging_mode(0);
    auto done = is_write ? pyrebox::vmi::write_virtual(machine.physical_memory(), mode, word(pgd),
                                                       word(addr), buf, word(len))
                         : pyrebox::vmi::read_virtual(machine.physical_memory(), mode, word(pgd),
                                                      word(addr), buf, word(len));
    return done ? 0 : -1;
}

SDK_EXPORT uint64_t qemu_virtual_to_physical_with_pgd(uint64_t pgd, uint64_t addr) {
    auto& machine = *session().machine;
    auto t = pyrebox::vmi::translate(machine.physical_memory(), machine.paging_mode(0), word(pgd),
                                     word(addr));
    return t ? word(t->paddr) : word(~uint64_t{0});
}

SDK_EXPORT uint64_t get_pgd(void* cpu) {
    const TriggerCpu* c = cpu_of(cpu);
    return c ? word(session().engine->current_pgd(c->cpu_index)) : 0;
}

SDK_EXPORT uint64_t get_cpu_addr(void* cpu) {
    const TriggerCpu* c = cpu_of(cpu);
    return c ? word(c->pc) : 0;
}

SDK_EXPORT uint64_t get_stack_pointer(void* cpu) {
    const TriggerCpu* c = cpu_of(cpu);
    if (c == nullptr) {
        return 0;
    }
    auto sp = session().machine->read_register(c->cpu_index, wide() ? "rsp" : "esp");
    return sp ? word(*sp) : 0;
}

SDK_EXPORT uint64_t get_tb_addr(void* tb) {
    return tb ? word(static_cast<const pyrebox::TbInfo*>(tb)->pc) : 0;
}

SDK_EXPORT uint64_t get_tb_size(void* tb) {
    return tb ? word(static_cast<const pyrebox::TbInfo*>(tb)->size) : 0;
}

SDK_EXPORT uint64_t get_running_process(int cpu_index) {
    auto& engine = *session().engine;
    if (cpu_index < 0 || cpu_index >= engine.max_vcpus()) {
        return 0;
    }
    return word(engine.current_pgd(cpu_index));
}

SDK_EXPORT int qemu_is_kernel_running(int cpu_index) {
    auto cs = session().machine->read_register(cpu_index, "cs");
    return cs && (*cs & 3) == 0 ? 1 : 0;
}

SDK_EXPORT int get_num_cpus(void) { return session().machine->num_cpus(); }

SDK_EXPORT int is_monitored_process(uint64_t pgd) {
    return session().engine->is_monitored(word(pgd)) ? 1 : 0;
}
