#include "qemu/internals.h"

#include <dlfcn.h>

#include <set>
#include <sstream>

namespace pyrebox::qemu {

namespace {

struct Entry {
    const char* name;
    void** slot;
};

// One table serves resolution and the self-check, so they cannot disagree.
std::vector<Entry> required_table(Internals& t) {
    return {
        {"qemu_get_cpu", reinterpret_cast<void**>(&t.qemu_get_cpu)},
        {"cpu_memory_rw_debug", reinterpret_cast<void**>(&t.cpu_memory_rw_debug)},
        {"cpu_physical_memory_rw", reinterpret_cast<void**>(&t.cpu_physical_memory_rw)},
        {"cpu_get_phys_page_debug", reinterpret_cast<void**>(&t.cpu_get_phys_page_debug)},
        {"x86_cpu_gdb_read_register", reinterpret_cast<void**>(&t.x86_cpu_gdb_read_register)},
        {"x86_cpu_gdb_write_register", reinterpret_cast<void**>(&t.x86_cpu_gdb_write_register)},
        {"tb_flush", reinterpret_cast<void**>(&t.tb_flush)},
        {"cpu_loop_exit", reinterpret_cast<void**>(&t.cpu_loop_exit)},
        {"async_run_on_cpu", reinterpret_cast<void**>(&t.async_run_on_cpu)},
        {"qemu_cpu_kick", reinterpret_cast<void**>(&t.qemu_cpu_kick)},
        {"vm_stop", reinterpret_cast<void**>(&t.vm_stop)},
        {"vm_start", reinterpret_cast<void**>(&t.vm_start)},
        {"qemu_system_shutdown_request",
         reinterpret_cast<void**>(&t.qemu_system_shutdown_request)},
        {"x86_cpu_dump_state", reinterpret_cast<void**>(&t.x86_cpu_dump_state)},
        {"cpu_restore_state", reinterpret_cast<void**>(&t.cpu_restore_state)},
        {"address_space_rw", reinterpret_cast<void**>(&t.address_space_rw)},
        {"address_space_memory", &t.address_space_memory},
        {"cpu_inb", reinterpret_cast<void**>(&t.cpu_inb)},
        {"cpu_inw", reinterpret_cast<void**>(&t.cpu_inw)},
        {"cpu_inl", reinterpret_cast<void**>(&t.cpu_inl)},
        {"cpu_outb", reinterpret_cast<void**>(&t.cpu_outb)},
        {"cpu_outw", reinterpret_cast<void**>(&t.cpu_outw)},
        {"cpu_outl", reinterpret_cast<void**>(&t.cpu_outl)},
        {"qemu_add_vm_change_state_handler",
         reinterpret_cast<void**>(&t.qemu_add_vm_change_state_handler)},
    };
}

std::vector<Entry> optional_table(Internals& t) {
    return {
        {"qemu_plugin_write_register", &t.plugin_write_register},
        {"qemu_plugin_write_memory_vaddr", &t.plugin_write_memory_vaddr},
        {"qemu_plugin_read_memory_hwaddr", &t.plugin_read_memory_hwaddr},
        {"qemu_plugin_write_memory_hwaddr", &t.plugin_write_memory_hwaddr},
        {"start_exclusive", reinterpret_cast<void**>(&t.start_exclusive)},
        {"end_exclusive", reinterpret_cast<void**>(&t.end_exclusive)},
        {"cpu_exec_start", reinterpret_cast<void**>(&t.cpu_exec_start)},
        {"cpu_exec_end", reinterpret_cast<void**>(&t.cpu_exec_end)},
        {"cpu_disable_ticks", reinterpret_cast<void**>(&t.cpu_disable_ticks)},
        {"cpu_enable_ticks", reinterpret_cast<void**>(&t.cpu_enable_ticks)},
        {"runstate_is_running", reinterpret_cast<void**>(&t.runstate_is_running)},
        {"bql_lock_impl", reinterpret_cast<void**>(&t.bql_lock_impl)},
        {"bql_unlock", reinterpret_cast<void**>(&t.bql_unlock)},
        {"bql_locked", reinterpret_cast<void**>(&t.bql_locked)},
        {"cpu_load_eflags", reinterpret_cast<void**>(&t.cpu_load_eflags)},
        {"helper_read_eflags", reinterpret_cast<void**>(&t.helper_read_eflags)},
        {"address_space_get_flatview", reinterpret_cast<void**>(&t.address_space_get_flatview)},
        {"flatview_for_each_range", reinterpret_cast<void**>(&t.flatview_for_each_range)},
        {"flatview_unref", reinterpret_cast<void**>(&t.flatview_unref)},
        {"memory_region_get_ram_addr", reinterpret_cast<void**>(&t.memory_region_get_ram_addr)},
    };
}

}  // namespace

std::vector<std::string> resolve_internals(const SymbolResolver& resolve, Internals& out) {
    std::vector<std::string> missing;
    for (const auto& entry : required_table(out)) {
        *entry.slot = resolve(entry.name);
        if (*entry.slot == nullptr) {
            missing.emplace_back(entry.name);
        }
    }
    for (const auto& entry : optional_table(out)) {
        *entry.slot = resolve(entry.name);
    }
    return missing;
}

std::vector<std::string> required_internal_names() {
    Internals scratch;
    std::vector<std::string> names;
    for (const auto& entry : required_table(scratch)) {
        names.emplace_back(entry.name);
    }
    return names;
}

SymbolResolver process_symbol_resolver(std::string pretend_missing) {
    std::set<std::string> hidden;
    std::stringstream list(pretend_missing);
    for (std::string name; std::getline(list, name, ',');) {
        if (!name.empty()) {
            hidden.insert(name);
        }
    }
    return [hidden = std::move(hidden)](const char* name) -> void* {
        if (hidden.count(name) != 0) {
            return nullptr;
        }
        return dlsym(RTLD_DEFAULT, name);
    };
}

Internals& internals() {
    static Internals table;
    return table;
}

}  // namespace pyrebox::qemu
