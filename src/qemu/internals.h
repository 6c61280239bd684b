// The internals bridge: QEMU functions PyREBox needs where plugin API v4 has
// none (register and memory writes, physical memory, TB flush, pause).
//
// They are exported by Debian's QEMU binaries (built with module support) and
// resolved once at install with dlsym; every required one is checked at
// start-up so a QEMU lacking one fails with a message naming each missing
// symbol instead of crashing later. Functions of plugin API >= 5 (official
// register/memory writes) are optional: when the running QEMU has them they
// are preferred.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <glib.h>

namespace pyrebox::qemu {

struct CPUState;  // QEMU's vCPU object; opaque to us.

// QEMU's run_on_cpu_data is a 64-bit union passed by value.
using RunOnCpuFn = void (*)(CPUState*, uint64_t);

struct Internals {
    // Required (QEMU 10.0 exports all of them).
    CPUState* (*qemu_get_cpu)(int index) = nullptr;
    int (*cpu_memory_rw_debug)(CPUState*, uint64_t vaddr, void* buf, size_t len,
                               bool is_write) = nullptr;
    void (*cpu_physical_memory_rw)(uint64_t paddr, void* buf, uint64_t len,
                                   bool is_write) = nullptr;
    uint64_t (*cpu_get_phys_page_debug)(CPUState*, uint64_t vaddr) = nullptr;
    int (*x86_cpu_gdb_read_register)(CPUState*, GByteArray* buf, int regnum) = nullptr;
    int (*x86_cpu_gdb_write_register)(CPUState*, uint8_t* buf, int regnum) = nullptr;
    void (*tb_flush)(CPUState*) = nullptr;
    void (*cpu_loop_exit)(CPUState*) = nullptr;
    void (*async_run_on_cpu)(CPUState*, RunOnCpuFn fn, uint64_t data) = nullptr;
    void (*qemu_cpu_kick)(CPUState*) = nullptr;
    int (*vm_stop)(int run_state) = nullptr;
    void (*vm_start)(void) = nullptr;
    void (*qemu_system_shutdown_request)(int cause) = nullptr;
    void (*x86_cpu_dump_state)(CPUState*, FILE*, int flags) = nullptr;
    // Brings env's lazily-kept state (EIP, the flags' cc_op) up to the
    // instruction whose generated code contains `host_pc`.
    bool (*cpu_restore_state)(CPUState*, uintptr_t host_pc) = nullptr;
    // Physical accesses that report failure (MemTxResult 0 = ok) instead of
    // returning garbage for unbacked addresses. `attrs` is QEMU's MemTxAttrs
    // (a bitfield struct passed by value in one register); 0 = plain access.
    uint32_t (*address_space_rw)(void* address_space, uint64_t paddr, uint64_t attrs, void* buf,
                                 uint64_t len, bool is_write) = nullptr;
    void* address_space_memory = nullptr;  // QEMU's system memory AddressSpace
    uint8_t (*cpu_inb)(uint32_t port) = nullptr;
    uint16_t (*cpu_inw)(uint32_t port) = nullptr;
    uint32_t (*cpu_inl)(uint32_t port) = nullptr;
    void (*cpu_outb)(uint32_t port, uint8_t value) = nullptr;
    void (*cpu_outw)(uint32_t port, uint16_t value) = nullptr;
    void (*cpu_outl)(uint32_t port, uint32_t value) = nullptr;
    // Calls `cb(opaque, running, run_state)` in the main loop whenever the
    // VM stops or starts (after a loadvm too). Returns QEMU's entry handle.
    void* (*qemu_add_vm_change_state_handler)(void (*cb)(void* opaque, bool running,
                                                         int run_state),
                                              void* opaque) = nullptr;

    // Optional: plugin API >= 5 (QEMU 10.1+). Signatures differ between API
    // versions, so they stay untyped until an adapter for that version uses them.
    void* plugin_write_register = nullptr;
    void* plugin_write_memory_vaddr = nullptr;
    void* plugin_read_memory_hwaddr = nullptr;
    void* plugin_write_memory_hwaddr = nullptr;

    // Optional: exclusive sections (every other vCPU out of guest code), used
    // to freeze the machine while a shell opened from a callback is served.
    void (*start_exclusive)(void) = nullptr;
    void (*end_exclusive)(void) = nullptr;
    void (*cpu_exec_start)(CPUState*) = nullptr;
    void (*cpu_exec_end)(CPUState*) = nullptr;

    // Optional: the guest's clock (QEMU_CLOCK_VIRTUAL and the TSC), stopped
    // while a shell opened from a callback is served, as `stop` does, so the
    // guest sees no time pass. All three want the big QEMU lock held.
    // runstate_is_running tells whether a vm_stop has begun meanwhile: QEMU
    // sets the stopped run state before it waits for the vCPUs, and its
    // vm_start enables the ticks again.
    void (*cpu_disable_ticks)(void) = nullptr;
    void (*cpu_enable_ticks)(void) = nullptr;
    bool (*runstate_is_running)(void) = nullptr;
    void (*bql_lock_impl)(const char* file, int line) = nullptr;
    void (*bql_unlock)(void) = nullptr;
    bool (*bql_locked)(void) = nullptr;

    // Optional: loads EFLAGS as the CPU does (arithmetic flags into the
    // lazy flags state, DF apart); the gdb view's write only stores
    // env->eflags, which the generated code does not read the flags from.
    // `env` is the CPUX86State inside the vCPU object.
    void (*cpu_load_eflags)(void* env, int eflags, int update_mask) = nullptr;
    // Optional: EFLAGS as the CPU sees them (env->eflags with the lazily
    // kept arithmetic flags and DF computed in; without VM and RF), where the
    // gdb view's read gives env->eflags alone.
    uint64_t (*helper_read_eflags)(void* env) = nullptr;

    // Optional: the system memory map (which guest-physical ranges are RAM
    // or ROM, i.e. backed by a RAM block, rather than MMIO or unassigned).
    // QEMU's flatview_cb takes Int128 start and length, passed like an
    // unsigned __int128 (two registers) whichever way Int128 is defined.
    void* (*address_space_get_flatview)(void* address_space) = nullptr;
    void (*flatview_for_each_range)(void* flatview,
                                    bool (*cb)(unsigned __int128 start, unsigned __int128 len,
                                               const void* memory_region,
                                               uint64_t offset_in_region, void* opaque),
                                    void* opaque) = nullptr;
    void (*flatview_unref)(void* flatview) = nullptr;
    uint64_t (*memory_region_get_ram_addr)(const void* memory_region) = nullptr;

    bool has_memory_map() const {
        return address_space_get_flatview != nullptr && flatview_for_each_range != nullptr &&
               flatview_unref != nullptr && memory_region_get_ram_addr != nullptr;
    }

    bool has_exclusive() const {
        return start_exclusive != nullptr && end_exclusive != nullptr &&
               cpu_exec_start != nullptr && cpu_exec_end != nullptr;
    }

    bool has_clock_control() const {
        return cpu_disable_ticks != nullptr && cpu_enable_ticks != nullptr &&
               runstate_is_running != nullptr && bql_lock_impl != nullptr &&
               bql_unlock != nullptr && bql_locked != nullptr;
    }

    bool has_official_writes() const {
        return plugin_write_register != nullptr && plugin_write_memory_vaddr != nullptr;
    }
};

// Looks a symbol up; returns nullptr when absent. The real one is dlsym.
using SymbolResolver = std::function<void*(const char* name)>;

// Fills `out` and returns the names of the required symbols that could not be
// resolved, in table order (empty on success).
std::vector<std::string> resolve_internals(const SymbolResolver& resolve, Internals& out);

// The names of every required symbol, in table order.
std::vector<std::string> required_internal_names();

// dlsym(RTLD_DEFAULT, name), except that the names listed (comma-separated)
// in `pretend_missing` resolve to nullptr: how the start-up self-check is
// exercised against a real QEMU.
SymbolResolver process_symbol_resolver(std::string pretend_missing = {});

// The process-wide table, filled at install and read-only afterwards.
Internals& internals();

}  // namespace pyrebox::qemu
