/* PyREBox trigger SDK: helpers beyond PyREBox's own API. */
#ifndef PYREBOX_SDK_TRIGGER_HELPERS_H
#define PYREBOX_SDK_TRIGGER_HELPERS_H

#include "callbacks.h"
#include "qemu_glue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the process `pgd` is monitored. */
int is_monitored_process(pyrebox_target_ulong pgd);

/* Variables holding a number or a copy of a string, which Python reads back
 * with get_trigger_var as an int or a str. */
void set_var_uint(callback_handle_t handle, const char* key, pyrebox_target_ulong value);
void set_var_str(callback_handle_t handle, const char* key, const char* value);

/* The highest user-space address on this target (kernel code lies above). */
#if TARGET_LONG_SIZE == 8
#define PYREBOX_USER_SPACE_END ((pyrebox_target_ulong)0x00007fffffffffffULL)
#else
#define PYREBOX_USER_SPACE_END ((pyrebox_target_ulong)0xbfffffffUL)
#endif

#ifdef __cplusplus
}
#endif

#endif
