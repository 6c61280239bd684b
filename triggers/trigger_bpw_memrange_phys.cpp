/*
 * Physical range breakpoint (MEM_WRITE_CB): only accesses to physical
 * addresses in [begin, end) reach Python, whatever the process.
 * Variables: begin, end.
 */
extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"

extern "C" {

callback_type_t get_type() { return MEM_WRITE_CB; }

int trigger(callback_handle_t handle, callback_params_t params) {
    const pyrebox_target_ulong* begin = (const pyrebox_target_ulong*)get_var(handle, "begin");
    const pyrebox_target_ulong* end = (const pyrebox_target_ulong*)get_var(handle, "end");
    if (begin == nullptr || end == nullptr) {
        return 0;
    }
    const pyrebox_target_ulong paddr = params.mem_write_params.paddr;
    return paddr >= *begin && paddr < *end;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
