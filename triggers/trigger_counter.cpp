/*
 * Counts INSN_BEGIN events at one address in one process without calling
 * Python: variables "addr" and "pgd" (set from Python), "count" (kept by the
 * trigger, read back with get_trigger_var). Declares the function "reset",
 * called with call_trigger_function, which sets the count to 0.
 */
extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

extern "C" {

static void reset(callback_handle_t handle) { set_var_uint(handle, "count", 0); }

callback_type_t get_type() { return INSN_BEGIN_CB; }

int trigger(callback_handle_t handle, callback_params_t params) {
    const pyrebox_target_ulong* addr = (const pyrebox_target_ulong*)get_var(handle, "addr");
    const pyrebox_target_ulong* pgd = (const pyrebox_target_ulong*)get_var(handle, "pgd");
    pyrebox_target_ulong* count = (pyrebox_target_ulong*)get_var(handle, "count");
    if (count == nullptr) {
        declare_function(handle, "reset", reset);
        reset(handle);
        count = (pyrebox_target_ulong*)get_var(handle, "count");
    }
    if (addr != nullptr && pgd != nullptr && get_cpu_addr(params.insn_begin_params.cpu) == *addr &&
        get_pgd(params.insn_begin_params.cpu) == *pgd) {
        ++*count;
    }
    return 0;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
