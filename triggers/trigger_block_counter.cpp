/*
 * Counts BLOCK_BEGIN events in every process without calling Python; the
 * count is the variable "count" (read with get_trigger_var).
 */
extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

extern "C" {

callback_type_t get_type() { return BLOCK_BEGIN_CB; }

int trigger(callback_handle_t handle, callback_params_t params) {
    (void)params;
    pyrebox_target_ulong* count = (pyrebox_target_ulong*)get_var(handle, "count");
    if (count == nullptr) {
        set_var_uint(handle, "count", 0);
        count = (pyrebox_target_ulong*)get_var(handle, "count");
    }
    ++*count;
    return 0;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
