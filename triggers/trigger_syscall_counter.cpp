/*
 * Counts system-call entries of one call in one process, in every process's
 * events (registered with all_processes=True), without calling Python:
 * variables "number" and "pid" (set from Python), "count" (kept by the
 * trigger, read back with get_trigger_var).
 */
extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

extern "C" {

callback_type_t get_type() { return SYSCALL_CB; }

int trigger(callback_handle_t handle, callback_params_t params) {
    const pyrebox_target_ulong* number = (const pyrebox_target_ulong*)get_var(handle, "number");
    const pyrebox_target_ulong* pid = (const pyrebox_target_ulong*)get_var(handle, "pid");
    pyrebox_target_ulong* count = (pyrebox_target_ulong*)get_var(handle, "count");
    if (count == nullptr) {
        set_var_uint(handle, "count", 0);
        count = (pyrebox_target_ulong*)get_var(handle, "count");
    }
    const syscall_params_t& p = params.syscall_params;
    if (number != nullptr && pid != nullptr && p.number == *number && p.pid == *pid) {
        ++*count;
    }
    return 0;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
