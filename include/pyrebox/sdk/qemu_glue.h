/*
 * PyREBox trigger SDK: target types and access to the emulated machine.
 *
 * Header names, types and functions follow PyREBox's, so triggers written
 * for PyREBox build unmodified. The build defines TARGET_X86_64 or
 * TARGET_I386 for the running QEMU target. Every function here is provided
 * by the PyREBox plugin and may be called from trigger(), on the vCPU thread
 * of the event, without the Python GIL (unless the trigger uses Python).
 */
#ifndef PYREBOX_SDK_QEMU_GLUE_H
#define PYREBOX_SDK_QEMU_GLUE_H

#include <stdint.h>

#if defined(TARGET_X86_64)
#define TARGET_LONG_BITS 64
#define PYREBOX_CPU_NB_REGS 16
#elif defined(TARGET_I386)
#define TARGET_LONG_BITS 32
#define PYREBOX_CPU_NB_REGS 8
#else
#error "define TARGET_X86_64 or TARGET_I386 (the PyREBox trigger build does)"
#endif

#define TARGET_LONG_SIZE (TARGET_LONG_BITS / 8)
#if TARGET_LONG_SIZE == 4
typedef int32_t pyrebox_target_long;
typedef uint32_t pyrebox_target_ulong;
#else
typedef int64_t pyrebox_target_long;
typedef uint64_t pyrebox_target_ulong;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles: valid only during the trigger call that received them. */
typedef void* qemu_cpu_opaque_t;
typedef void* qemu_tb_opaque_t;

#if defined(TARGET_I386) && !defined(TARGET_X86_64)
typedef enum {
    RN_EAX = 0, RN_ECX, RN_EDX, RN_EBX, RN_ESP, RN_EBP, RN_ESI, RN_EDI, RN_EIP, RN_EFLAGS,
    RN_ES, RN_CS, RN_SS, RN_DS, RN_FS, RN_GS, RN_LDT, RN_TR, RN_GDT, RN_IDT,
    RN_CR0, RN_CR1, RN_CR2, RN_CR3, RN_CR4, RN_CPU_INDEX, RN_LAST,
} register_num_t;
#else
typedef enum {
    RN_RAX = 0, RN_RCX, RN_RDX, RN_RBX, RN_RSP, RN_RBP, RN_RSI, RN_RDI, RN_RIP, RN_RFLAGS,
    RN_ES, RN_CS, RN_SS, RN_DS, RN_FS, RN_GS, RN_LDT, RN_TR, RN_GDT, RN_IDT,
    RN_CR0, RN_CR1, RN_CR2, RN_CR3, RN_CR4, RN_CPU_INDEX,
    RN_R8, RN_R9, RN_R10, RN_R11, RN_R12, RN_R13, RN_R14, RN_R15, RN_LAST,
} register_num_t;
#endif

/* Registers of the event's vCPU. Segment registers give the selector,
 * GDT/IDT the base. Returns 0 on success, -1 for a register not available. */
int read_register_convert(qemu_cpu_opaque_t cpu, register_num_t reg, pyrebox_target_ulong* out);

/* Guest memory. Return 0 when the whole range was transferred, -1 when any of
 * it is unmapped or not memory (then nothing is transferred). */
int qemu_physical_memory_rw(pyrebox_target_ulong addr, uint8_t* buf, pyrebox_target_ulong len,
                            int is_write);
int qemu_virtual_memory_rw_with_pgd(pyrebox_target_ulong pgd, pyrebox_target_ulong addr,
                                    uint8_t* buf, pyrebox_target_ulong len, int is_write);
/* Physical address of `addr` in address space `pgd`; (pyrebox_target_ulong)-1 if unmapped. */
pyrebox_target_ulong qemu_virtual_to_physical_with_pgd(pyrebox_target_ulong pgd,
                                                       pyrebox_target_ulong addr);

/* The process (pgd: normalised CR3) the CPU runs in, its program counter and
 * stack pointer; the address and size of a translation block. */
pyrebox_target_ulong get_pgd(qemu_cpu_opaque_t cpu);
pyrebox_target_ulong get_cpu_addr(qemu_cpu_opaque_t cpu);
pyrebox_target_ulong get_stack_pointer(qemu_cpu_opaque_t cpu);
pyrebox_target_ulong get_tb_addr(qemu_tb_opaque_t tb);
pyrebox_target_ulong get_tb_size(qemu_tb_opaque_t tb);

pyrebox_target_ulong get_running_process(int cpu_index);
int qemu_is_kernel_running(int cpu_index);
int get_num_cpus(void);

#ifdef __cplusplus
}
#endif

#endif
