/*
 * Counts the returns of one system call in one process (all_processes=True
 * events, no Python call): variables "number", "pid" and "retval" (set from
 * Python); "count" (every return of that call in that process) and
 * "matched" (those that returned "retval"), kept by the trigger.
 */
extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

extern "C" {

callback_type_t get_type() { return SYSCALL_RET_CB; }

static pyrebox_target_ulong* counter(callback_handle_t handle, const char* name) {
    pyrebox_target_ulong* value = (pyrebox_target_ulong*)get_var(handle, name);
    if (value == nullptr) {
        set_var_uint(handle, name, 0);
        value = (pyrebox_target_ulong*)get_var(handle, name);
    }
    return value;
}

int trigger(callback_handle_t handle, callback_params_t params) {
    const pyrebox_target_ulong* number = (const pyrebox_target_ulong*)get_var(handle, "number");
    const pyrebox_target_ulong* pid = (const pyrebox_target_ulong*)get_var(handle, "pid");
    const pyrebox_target_ulong* retval = (const pyrebox_target_ulong*)get_var(handle, "retval");
    pyrebox_target_ulong* count = counter(handle, "count");
    pyrebox_target_ulong* matched = counter(handle, "matched");
    const syscall_ret_params_t& p = params.syscall_ret_params;
    if (number != nullptr && pid != nullptr && p.number == *number && p.pid == *pid) {
        ++*count;
        if (retval != nullptr && (pyrebox_target_ulong)p.retval == *retval) {
            ++*matched;
        }
    }
    return 0;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
