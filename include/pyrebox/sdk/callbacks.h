/*
 * PyREBox trigger SDK: callback types, event parameters, trigger variables.
 *
 * A trigger is a shared object exporting, with C linkage:
 *   callback_type_t get_type(void);   the callback type it attaches to
 *   int trigger(callback_handle_t handle, callback_params_t params);
 *                                     1: deliver the event to Python, 0: drop it
 *   void clean(callback_handle_t handle);  called once when it is removed
 * and optionally
 *   int accepts_type(callback_type_t type);
 *                                     for a trigger serving several callback
 *                                     types (then get_type() is not checked)
 *   int vaddr_window(callback_handle_t handle, pyrebox_target_ulong* begin,
 *                    pyrebox_target_ulong* end);
 *                                     MEM_READ_CB / MEM_WRITE_CB triggers that
 *                                     return 0, with no side effect, for every
 *                                     access whose vaddr is outside a range:
 *                                     set [*begin, *end) and return 1
 *                                     (*begin >= *end: every access is
 *                                     dropped). Accesses outside the window
 *                                     then skip the trigger entirely. Asked
 *                                     again after any trigger variable
 *                                     changes (set_var, set_trigger_var);
 *                                     return 0 for "no window".
 * It runs for every event of its callback in every process (not only the
 * monitored ones; outside its vaddr_window, when it has one, not at all) and
 * checks the context itself.
 */
#ifndef PYREBOX_SDK_CALLBACKS_H
#define PYREBOX_SDK_CALLBACKS_H

#include <stdint.h>

#include "qemu_glue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PyREBox's numbering (CallbackManager.*_CB). OP_BLOCK_BEGIN_CB and
 * OP_INSN_BEGIN_CB are BLOCK_BEGIN_CB and INSN_BEGIN_CB callbacks added at
 * an address (add_callback(..., addr=...)): a trigger whose get_type() is
 * one of them attaches to such callbacks only, and sees the same params
 * (block_begin_params, insn_begin_params). A BLOCK_BEGIN_CB / INSN_BEGIN_CB
 * trigger attaches to both kinds. */
typedef enum {
    OP_BLOCK_BEGIN_CB = 0,
    OP_INSN_BEGIN_CB = 1,
    BLOCK_BEGIN_CB = 2,
    BLOCK_END_CB = 3,
    INSN_BEGIN_CB = 4,
    INSN_END_CB = 5,
    MEM_READ_CB = 6,
    MEM_WRITE_CB = 7,
    KEYSTROKE_CB = 8,
    NIC_REC_CB = 9,
    NIC_SEND_CB = 10,
    OPCODE_RANGE_CB = 11,
    TLB_EXEC_CB = 12,
    CREATEPROC_CB = 13,
    REMOVEPROC_CB = 14,
    CONTEXTCHANGE_CB = 15,
    LOADMODULE_CB = 16,
    REMOVEMODULE_CB = 17,
    SYSCALL_CB = 18,
    SYSCALL_RET_CB = 19,
    LAST_CB = 20,
} callback_type_t;

typedef unsigned int callback_handle_t;
typedef unsigned int module_handle_t;

typedef struct block_begin_params {
    int cpu_index;
    qemu_cpu_opaque_t cpu;
    qemu_tb_opaque_t tb;
} block_begin_params_t;

typedef struct block_end_params {
    int cpu_index;
    qemu_cpu_opaque_t cpu;
    qemu_tb_opaque_t tb;
    pyrebox_target_ulong cur_pc;
    pyrebox_target_ulong next_pc;
} block_end_params_t;

typedef struct insn_begin_params {
    int cpu_index;
    qemu_cpu_opaque_t cpu;
} insn_begin_params_t;

typedef struct insn_end_params {
    int cpu_index;
    qemu_cpu_opaque_t cpu;
} insn_end_params_t;

/* MEM_READ_CB / MEM_WRITE_CB: the access at `vaddr` of `size` bytes; its
 * physical address is `paddr`, also named `haddr` as in PyREBox's own
 * triggers (the same value; (uintptr_t)-1 for I/O). `data` is the value
 * written (its low 64 bits for a 16-byte store) and `cpu` the vCPU at the
 * accessing instruction (get_cpu_addr gives that instruction). */
typedef struct mem_read_params {
    int cpu_index;
    pyrebox_target_ulong vaddr;
    union {
        uintptr_t haddr;
        pyrebox_target_ulong paddr;
    };
    pyrebox_target_ulong size;
    qemu_cpu_opaque_t cpu;
} mem_read_params_t;

typedef struct mem_write_params {
    int cpu_index;
    pyrebox_target_ulong vaddr;
    union {
        uintptr_t haddr;
        pyrebox_target_ulong paddr;
    };
    pyrebox_target_ulong size;
    pyrebox_target_ulong data;
    qemu_cpu_opaque_t cpu;
} mem_write_params_t;

typedef struct keystroke_params {
    unsigned int keycode;
} keystroke_params_t;

typedef struct nic_rec_params {
    unsigned char* buf;
    uint64_t size;
    uint64_t cur_pos;
    uint64_t start;
    uint64_t stop;
} nic_rec_params_t;

typedef struct nic_send_params {
    unsigned char* buf;
    uint64_t size;
    uint64_t address;
} nic_send_params_t;

typedef struct opcode_range_params {
    int cpu_index;
    qemu_cpu_opaque_t cpu;
    pyrebox_target_ulong cur_pc;
    pyrebox_target_ulong next_pc;
    uint16_t opcode;
} opcode_range_params_t;

typedef struct tlb_exec_params {
    qemu_cpu_opaque_t cpu;
    pyrebox_target_ulong vaddr;
} tlb_exec_params_t;

typedef struct vmi_create_proc_params {
    pyrebox_target_ulong pid;
    pyrebox_target_ulong pgd;
    char* name;
} vmi_create_proc_params_t;

typedef struct vmi_remove_proc_params {
    pyrebox_target_ulong pid;
    pyrebox_target_ulong pgd;
    char* name;
} vmi_remove_proc_params_t;

typedef struct vmi_context_change_params {
    pyrebox_target_ulong old_pgd;
    pyrebox_target_ulong new_pgd;
} vmi_context_change_params_t;

/* SYSCALL_CB: a thread enters a system call. `number` and `args` as its
 * entry path (`path`: 1 syscall, 2 int 0x80, 3 sysenter, 4 syscall from 32-bit
 * code; the i386 numbering but for 1) passes them; `pc`
 * is the system-call instruction; `pid`/`tid` 0 when introspection cannot
 * tell. */
typedef struct syscall_params {
    int cpu_index;
    qemu_cpu_opaque_t cpu;
    uint64_t pid;
    uint64_t tid;
    uint64_t pgd;
    uint64_t number;
    uint64_t args[6];
    uint64_t pc;
    uint64_t path;
} syscall_params_t;

/* SYSCALL_RET_CB: that call returns in that thread: the entry's members,
 * `retval` as the kernel returns it (a negative errno on failure) and
 * `child` 1 for the child's return of fork/vfork/clone. */
typedef struct syscall_ret_params {
    int cpu_index;
    qemu_cpu_opaque_t cpu;
    uint64_t pid;
    uint64_t tid;
    uint64_t pgd;
    uint64_t number;
    uint64_t args[6];
    uint64_t pc;
    uint64_t path;
    int64_t retval;
    uint64_t child;
} syscall_ret_params_t;

typedef struct callback_params {
    union {
        block_begin_params_t block_begin_params;
        block_end_params_t block_end_params;
        insn_begin_params_t insn_begin_params;
        insn_end_params_t insn_end_params;
        mem_read_params_t mem_read_params;
        mem_write_params_t mem_write_params;
        keystroke_params_t keystroke_params;
        nic_rec_params_t nic_rec_params;
        nic_send_params_t nic_send_params;
        opcode_range_params_t opcode_range_params;
        tlb_exec_params_t tlb_exec_params;
        vmi_create_proc_params_t vmi_create_proc_params;
        vmi_remove_proc_params_t vmi_remove_proc_params;
        vmi_context_change_params_t vmi_context_change_params;
        syscall_params_t syscall_params;
        syscall_ret_params_t syscall_ret_params;
    };
} callback_params_t;

/* Trigger variables, per callback. A value is a pointer to memory the trigger
 * allocated with malloc (PyREBox gives ownership to the variable): set_var
 * frees the previous value of the key, erase_trigger_vars frees them all.
 * Variables set from Python (set_trigger_var) hold a pyrebox_target_ulong or a
 * NUL-terminated string. A variable the trigger wants Python to read with
 * get_trigger_var holds a PyObject* the trigger built (the trigger includes
 * Python.h and then runs with the GIL held); get_trigger_var returns that
 * object. */
void* get_var(callback_handle_t handle, const char* key);
void set_var(callback_handle_t handle, const char* key, void* value);
void delete_var(callback_handle_t handle, const char* key, int free_value);
void erase_trigger_vars(callback_handle_t handle);

/* A function of the trigger that Python calls by name with
 * CallbackManager.call_trigger_function(callback_name, name). */
typedef void (*trigger_function_t)(callback_handle_t handle);
void declare_function(callback_handle_t handle, const char* name, trigger_function_t function);

#ifdef __cplusplus
}
#endif

#endif
