/*
 * Range breakpoint (MEM_READ_CB): only memory accesses in [begin, end) of
 * address space pgd reach Python. Variables (set with set_trigger_var):
 *   begin, end   the virtual range
 *   pgd          the process, or (pyrebox_target_ulong)-1 for any
 * Until all three are set, nothing passes. The range is also exported as
 * the trigger's vaddr_window, so accesses outside it never reach the trigger.
 */
extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

extern "C" {

callback_type_t get_type() { return MEM_READ_CB; }

// The range variables; all null until all three are set.
static void range_vars(callback_handle_t handle, const pyrebox_target_ulong** begin,
                       const pyrebox_target_ulong** end, const pyrebox_target_ulong** pgd) {
    *begin = (const pyrebox_target_ulong*)get_var(handle, "begin");
    *end = (const pyrebox_target_ulong*)get_var(handle, "end");
    *pgd = (const pyrebox_target_ulong*)get_var(handle, "pgd");
    if (*begin == nullptr || *end == nullptr || *pgd == nullptr) {
        *begin = *end = *pgd = nullptr;
    }
}

int trigger(callback_handle_t handle, callback_params_t params) {
    const pyrebox_target_ulong *begin, *end, *pgd;
    range_vars(handle, &begin, &end, &pgd);
    if (begin == nullptr) {
        return 0;
    }
    const pyrebox_target_ulong addr = params.mem_read_params.vaddr;
    if (addr < *begin || addr >= *end) {
        return 0;
    }
    return *pgd == (pyrebox_target_ulong)-1 || *pgd == get_running_process(params.mem_read_params.cpu_index);
}

int vaddr_window(callback_handle_t handle, pyrebox_target_ulong* begin_out,
                 pyrebox_target_ulong* end_out) {
    const pyrebox_target_ulong *begin, *end, *pgd;
    range_vars(handle, &begin, &end, &pgd);
    *begin_out = begin != nullptr ? *begin : 0;  // unset: nothing passes
    *end_out = begin != nullptr ? *end : 0;
    return 1;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
