/*
 * probe: the execution engine's test program. Static, non-PIE, linked at its
 * own address (see guest/build.py) so no other guest program executes code
 * at its addresses. Everything it does is counted and printed, so tests can
 * assert exact event counts, addresses, sizes and values.
 *
 * Usage: probe [STEPS1=1000] [STEPS2=500] [CPUIDS=100] [SLEEPS=3]
 *
 * Order of work (the addresses of every function below are printed first):
 *   1. pyrebox_step(i) for i in [0, STEPS1): stores (i*7+3)&0xff, one byte,
 *      at step_buffer[i % 4096].
 *   2. pyrebox_checkpoint(1).
 *   3. pyrebox_step(i) for i in [0, STEPS2).
 *   4. pyrebox_checkpoint(2).
 *   5. CPUIDS times the `cpuid` at pyrebox_cpuid_site (next instruction at
 *      pyrebox_cpuid_next).
 *   6. pyrebox_wide_writes(): 64 stores into wide_buffer, store k has size
 *      1 << (k % 4) bytes at offset 8*k, value wide_value(k) truncated.
 *   7. pyrebox_reads(): 256 four-byte loads of read_buffer[k] (filled with
 *      0x01000000 + k at start-up), prints reads_sum=.
 *   8. value=<pyrebox_identity(41)>.
 *   9. pyrebox_skipped(): prints "skipped-function-ran".
 *  10. SLEEPS times usleep(20000) (the process is scheduled out and in).
 *  10b. pyrebox_flags(1, 2), (5, 5), (-1, 3): `cmp` then, at
 *      pyrebox_flags_site (mid-block), `setb`; prints flags=<3 results>.
 *  11. prints buffer_head=<first 8 bytes of step_buffer as characters, '.'
 *      for non-printable> and checksum=<sum of step_buffer bytes>.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define STEP_BUFFER_SIZE 4096
#define WIDE_STORES 64
#define READS 256

unsigned char step_buffer[STEP_BUFFER_SIZE] __attribute__((aligned(4096)));
unsigned char wide_buffer[WIDE_STORES * 8] __attribute__((aligned(4096)));
uint32_t read_buffer[READS] __attribute__((aligned(4096)));

__attribute__((noinline)) void pyrebox_step(unsigned long i) {
    volatile unsigned char* buffer = step_buffer;
    buffer[i % STEP_BUFFER_SIZE] = (unsigned char)((i * 7 + 3) & 0xff);
}

__attribute__((noinline)) void pyrebox_checkpoint(int n) {
    __asm__ volatile("" : : "r"(n) : "memory");
}

extern char pyrebox_cpuid_site[], pyrebox_cpuid_next[];

__attribute__((noinline)) void pyrebox_cpuid(void) {
    unsigned int a = 0, b, c = 0, d;
    __asm__ volatile(
        ".globl pyrebox_cpuid_site\n"
        "pyrebox_cpuid_site:\n\t"
        "cpuid\n"
        ".globl pyrebox_cpuid_next\n"
        "pyrebox_cpuid_next:\n\t"
        "nop\n"
        : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
}

uint64_t wide_value(unsigned k) { return 0x1122334455667788ull ^ ((uint64_t)k * 0x0101010101010101ull); }

__attribute__((noinline)) void pyrebox_wide_writes(void) {
    for (unsigned k = 0; k < WIDE_STORES; k++) {
        void* at = wide_buffer + 8 * k;
        uint64_t v = wide_value(k);
        switch (k % 4) {
            case 0: *(volatile uint8_t*)at = (uint8_t)v; break;
            case 1: *(volatile uint16_t*)at = (uint16_t)v; break;
            case 2: *(volatile uint32_t*)at = (uint32_t)v; break;
            case 3: *(volatile uint64_t*)at = v; break;
        }
    }
}

__attribute__((noinline)) uint64_t pyrebox_reads(void) {
    volatile uint32_t* p = read_buffer;
    uint64_t sum = 0;
    for (unsigned k = 0; k < READS; k++) {
        sum += p[k];
    }
    return sum;
}

__attribute__((noinline)) int pyrebox_identity(int x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

__attribute__((noinline)) void pyrebox_skipped(void) {
    puts("skipped-function-ran");
    fflush(stdout);
}

extern char pyrebox_flags_site[];

__attribute__((noinline)) int pyrebox_flags(int a, int b) {
    unsigned char below;
    __asm__ volatile(
        "cmp %2, %1\n"
        ".globl pyrebox_flags_site\n"
        "pyrebox_flags_site:\n\t"
        "setb %0\n"
        : "=r"(below)
        : "r"(a), "r"(b)
        : "cc");
    return below;
}

static unsigned long arg(int argc, char** argv, int i, unsigned long fallback) {
    return argc > i ? strtoul(argv[i], NULL, 0) : fallback;
}

int main(int argc, char** argv) {
    unsigned long steps1 = arg(argc, argv, 1, 1000);
    unsigned long steps2 = arg(argc, argv, 2, 500);
    unsigned long cpuids = arg(argc, argv, 3, 100);
    unsigned long sleeps = arg(argc, argv, 4, 3);

    for (unsigned k = 0; k < READS; k++) {
        read_buffer[k] = 0x01000000u + k;
    }
    printf("pid=%d\n", getpid());
    printf("step=%p\n", (void*)pyrebox_step);
    printf("checkpoint=%p\n", (void*)pyrebox_checkpoint);
    printf("cpuid_site=%p\n", (void*)pyrebox_cpuid_site);
    printf("cpuid_next=%p\n", (void*)pyrebox_cpuid_next);
    printf("wide_writes=%p\n", (void*)pyrebox_wide_writes);
    printf("reads=%p\n", (void*)pyrebox_reads);
    printf("identity=%p\n", (void*)pyrebox_identity);
    printf("skipped=%p\n", (void*)pyrebox_skipped);
    printf("flags_site=%p\n", (void*)pyrebox_flags_site);
    printf("step_buffer=%p\n", (void*)step_buffer);
    printf("wide_buffer=%p\n", (void*)wide_buffer);
    printf("read_buffer=%p\n", (void*)read_buffer);
    fflush(stdout);

    for (unsigned long i = 0; i < steps1; i++) pyrebox_step(i);
    pyrebox_checkpoint(1);
    for (unsigned long i = 0; i < steps2; i++) pyrebox_step(i);
    pyrebox_checkpoint(2);
    for (unsigned long i = 0; i < cpuids; i++) pyrebox_cpuid();
    pyrebox_wide_writes();
    printf("reads_sum=%llu\n", (unsigned long long)pyrebox_reads());
    printf("value=%d\n", pyrebox_identity(41));
    fflush(stdout);
    pyrebox_skipped();
    for (unsigned long i = 0; i < sleeps; i++) usleep(20000);
    int below1 = pyrebox_flags(1, 2);
    int below2 = pyrebox_flags(5, 5);
    int below3 = pyrebox_flags(-1, 3);
    printf("flags=%d%d%d\n", below1, below2, below3);

    printf("buffer_head=");
    for (int k = 0; k < 8; k++) {
        unsigned char c = step_buffer[k];
        putchar(c >= 0x20 && c < 0x7f ? c : '.');
    }
    unsigned long sum = 0;
    for (int k = 0; k < STEP_BUFFER_SIZE; k++) sum += step_buffer[k];
    printf("\nchecksum=%lu\n", sum);
    printf("done\n");
    return 0;
}
