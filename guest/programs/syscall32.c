/*
 * syscall32: a 32-bit (i386 ABI) program without libc, making its system
 * calls through each 32-bit entry path of an x86-64 kernel, for the
 * system-call tracing tests.
 *
 * Built -m32 -static -nostdlib (no 32-bit libc needed).
 *
 * Usage: syscall32 [GETPIDS=10]
 * In order:
 *   1. getpid through `int 0x80`;
 *   2. getpid through the vDSO's __kernel_vsyscall (AT_SYSINFO), which
 *      enters with `sysenter` on Intel CPUs and `syscall` on AMD ones;
 *   3. open("/nonexistent/syscall32", O_RDONLY) through the vDSO: -ENOENT;
 *   4. the fast instruction the vDSO uses, executed here, outside the vDSO,
 *      for getppid (the kernel returns to the vDSO's landing pad, which
 *      returns here); skipped when the vDSO has none;
 *   5. GETPIDS getpid calls through the vDSO;
 *   6. exit_group(0) through `int 0x80`.
 * Prints its results with write(1, ...) through the vDSO:
 * i386_int80_pid=, i386_vdso_pid=, i386_open=, i386_fast=(sysenter|syscall|none),
 * i386_raw_ppid=, i386_getpids= lines.
 */
#include <stdint.h>

#define NR_exit_group 252
#define NR_getpid 20
#define NR_getppid 64
#define NR_open 5
#define NR_write 4
#define AT_SYSINFO 32

static uintptr_t vsyscall;  /* __kernel_vsyscall */
static int fast_is_sysenter;

static long int80(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

static long vsys(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("call *%[fn]"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), [fn] "m"(vsyscall)
                     : "memory", "cc");
    return ret;
}

/* The vDSO's own sequence, here: the kernel resumes at the vDSO's landing
 * pad, which pops EBP, EDX, ECX and returns to the address pushed first. */
static long raw_fast(long nr)
{
    long ret;
    if (fast_is_sysenter) {
        __asm__ volatile("push $.Lsysenter_back%=\n\t"
                         "push %%ecx\n\tpush %%edx\n\tpush %%ebp\n\t"
                         "mov %%esp, %%ebp\n\t"
                         "sysenter\n"
                         ".Lsysenter_back%=:"
                         : "=a"(ret)
                         : "a"(nr)
                         : "memory", "cc");
    } else {
        __asm__ volatile("push $.Lsyscall_back%=\n\t"
                         "push %%ecx\n\tpush %%edx\n\tpush %%ebp\n\t"
                         "mov %%ecx, %%ebp\n\t"
                         "syscall\n"
                         ".Lsyscall_back%=:"
                         : "=a"(ret)
                         : "a"(nr)
                         : "memory", "cc", "ecx");
    }
    return ret;
}

static unsigned length(const char *s)
{
    unsigned n = 0;
    while (s[n])
        n++;
    return n;
}

static void print(const char *key, long value)
{
    char line[64];
    unsigned n = length(key);
    for (unsigned i = 0; i < n; i++)
        line[i] = key[i];
    char digits[12];
    unsigned d = 0;
    unsigned long v = value < 0 ? -(unsigned long)value : (unsigned long)value;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (value < 0)
        line[n++] = '-';
    while (d > 0)
        line[n++] = digits[--d];
    line[n++] = '\n';
    vsys(NR_write, 1, (long)line, n);
}

static void print_text(const char *text)
{
    vsys(NR_write, 1, (long)text, length(text));
}

static long parse(const char *s)
{
    long v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return v;
}

__attribute__((used)) static void start_c(uint32_t *sp)
{
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    uint32_t *p = sp + 1 + argc + 1;
    while (*p != 0)
        p++;  /* the environment */
    for (p++; p[0] != 0; p += 2)
        if (p[0] == AT_SYSINFO)
            vsyscall = p[1];
    if (vsyscall == 0)
        int80(NR_exit_group, 2, 0, 0);
    long getpids = argc > 1 ? parse(argv[1]) : 10;

    /* Which fast instruction precedes the vDSO's `int 0x80`. */
    const unsigned char *code = (const unsigned char *)vsyscall;
    int fast = 0;  /* 1: syscall, 2: sysenter */
    for (int i = 2; i < 32; i++) {
        if (code[i] == 0xcd && code[i + 1] == 0x80) {
            if (code[i - 2] == 0x0f && code[i - 1] == 0x05)
                fast = 1;
            else if (code[i - 2] == 0x0f && code[i - 1] == 0x34)
                fast = 2;
            break;
        }
    }
    fast_is_sysenter = fast == 2;

    print("i386_int80_pid=", int80(NR_getpid, 0, 0, 0));
    print("i386_vdso_pid=", vsys(NR_getpid, 0, 0, 0));
    print("i386_open=", vsys(NR_open, (long)"/nonexistent/syscall32", 0, 0));
    print_text(fast == 2   ? "i386_fast=sysenter\n"
               : fast == 1 ? "i386_fast=syscall\n"
                           : "i386_fast=none\n");
    if (fast != 0)
        print("i386_raw_ppid=", raw_fast(NR_getppid));
    long done = 0;
    for (long i = 0; i < getpids; i++)
        done += vsys(NR_getpid, 0, 0, 0) > 0;
    print("i386_getpids=", done);
    int80(NR_exit_group, 0, 0, 0);
}

__asm__(".globl _start\n"
        "_start:\n\t"
        "xor %ebp, %ebp\n\t"
        "mov %esp, %eax\n\t"
        "and $-16, %esp\n\t"
        "sub $12, %esp\n\t"
        "push %eax\n\t"
        "call start_c\n\t"
        "hlt\n");
