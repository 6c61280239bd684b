/* PyREBox trigger SDK: range triggers, written once for every callback type
 * they serve. A trigger file defines one with a single line:
 *
 *   PYREBOX_VIRTUAL_RANGE_TRIGGER(MEM_WRITE_CB, mem_write_params)
 *       accesses whose vaddr is in [begin, end) of address space pgd pass
 *       (pgd (pyrebox_target_ulong)-1: any); the range is also the trigger's
 *       vaddr_window, so accesses outside it never reach the trigger.
 *   PYREBOX_PHYSICAL_RANGE_TRIGGER(MEM_WRITE_CB, mem_write_params)
 *       accesses whose paddr is in [begin, end) pass, in any process.
 *
 * The variables (set_trigger_var) are begin, end and, for virtual ranges,
 * pgd; until all are set nothing passes. MEMBER is the callback_params_t
 * member of TYPE: one with cpu_index, vaddr and paddr (MEM_READ_CB,
 * MEM_WRITE_CB).
 */
#ifndef PYREBOX_SDK_RANGE_TRIGGERS_H
#define PYREBOX_SDK_RANGE_TRIGGERS_H

#include "callbacks.h"
#include "qemu_glue.h"

#ifdef __cplusplus
#define PYREBOX_RANGE_EXTERN_C extern "C"
#else
#define PYREBOX_RANGE_EXTERN_C
#endif

/* The range variables of `handle`; all null until all of them are set
 * (pgd is not asked for when `pgd` is null). */
static inline void pyrebox_range_vars(callback_handle_t handle,
                                      const pyrebox_target_ulong** begin,
                                      const pyrebox_target_ulong** end,
                                      const pyrebox_target_ulong** pgd) {
    *begin = (const pyrebox_target_ulong*)get_var(handle, "begin");
    *end = (const pyrebox_target_ulong*)get_var(handle, "end");
    int complete = *begin != 0 && *end != 0;
    if (pgd != 0) {
        *pgd = (const pyrebox_target_ulong*)get_var(handle, "pgd");
        complete = complete && *pgd != 0;
    }
    if (!complete) {
        *begin = *end = 0;
        if (pgd != 0) {
            *pgd = 0;
        }
    }
}

#define PYREBOX_VIRTUAL_RANGE_TRIGGER(TYPE, MEMBER)                                          \
    PYREBOX_RANGE_EXTERN_C callback_type_t get_type(void) { return TYPE; }                   \
    PYREBOX_RANGE_EXTERN_C int trigger(callback_handle_t handle, callback_params_t params) { \
        const pyrebox_target_ulong *begin, *end, *pgd;                                       \
        pyrebox_range_vars(handle, &begin, &end, &pgd);                                      \
        if (begin == 0) {                                                                    \
            return 0;                                                                        \
        }                                                                                    \
        const pyrebox_target_ulong addr = params.MEMBER.vaddr;                               \
        if (addr < *begin || addr >= *end) {                                                 \
            return 0;                                                                        \
        }                                                                                    \
        return *pgd == (pyrebox_target_ulong)-1 ||                                           \
               *pgd == get_running_process(params.MEMBER.cpu_index);                         \
    }                                                                                        \
    PYREBOX_RANGE_EXTERN_C int vaddr_window(callback_handle_t handle,                        \
                                            pyrebox_target_ulong* begin_out,                 \
                                            pyrebox_target_ulong* end_out) {                 \
        const pyrebox_target_ulong *begin, *end, *pgd;                                       \
        pyrebox_range_vars(handle, &begin, &end, &pgd);                                      \
        *begin_out = begin != 0 ? *begin : 0; /* unset: nothing passes */                    \
        *end_out = begin != 0 ? *end : 0;                                                    \
        return 1;                                                                            \
    }                                                                                        \
    PYREBOX_RANGE_EXTERN_C void clean(callback_handle_t handle) { erase_trigger_vars(handle); }

#define PYREBOX_PHYSICAL_RANGE_TRIGGER(TYPE, MEMBER)                                         \
    PYREBOX_RANGE_EXTERN_C callback_type_t get_type(void) { return TYPE; }                   \
    PYREBOX_RANGE_EXTERN_C int trigger(callback_handle_t handle, callback_params_t params) { \
        const pyrebox_target_ulong *begin, *end;                                             \
        pyrebox_range_vars(handle, &begin, &end, 0);                                         \
        if (begin == 0) {                                                                    \
            return 0;                                                                        \
        }                                                                                    \
        const pyrebox_target_ulong paddr = params.MEMBER.paddr;                              \
        return paddr >= *begin && paddr < *end;                                              \
    }                                                                                        \
    PYREBOX_RANGE_EXTERN_C void clean(callback_handle_t handle) { erase_trigger_vars(handle); }

#endif
