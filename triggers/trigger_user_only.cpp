/*
 * BLOCK_BEGIN filter: only blocks that execute in user mode reach Python.
 * Optional variable "pgd": when set, only blocks of that process.
 */
extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

extern "C" {

callback_type_t get_type() { return BLOCK_BEGIN_CB; }

int trigger(callback_handle_t handle, callback_params_t params) {
    const pyrebox_target_ulong pc = get_tb_addr(params.block_begin_params.tb);
    if (pc > PYREBOX_USER_SPACE_END) {
        return 0;
    }
    const pyrebox_target_ulong* pgd = (const pyrebox_target_ulong*)get_var(handle, "pgd");
    return pgd == nullptr || *pgd == get_pgd(params.block_begin_params.cpu);
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
