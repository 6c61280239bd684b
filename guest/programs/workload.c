/*
 * workload: the benchmark's guest program. CPU- and syscall-heavy, fixed
 * amount of work. Static, non-PIE, at an address of its own.
 *
 * Usage: workload [ROUNDS=20000] [WORK=1]
 * Each round: pyrebox_work_step(round) (a noinline function: 200 unrolled
 * steps of integer arithmetic, a few translation blocks long, then one byte
 * stored at work_buffer[round % 4096]; skipped with WORK=0), then one
 * getppid() system call.
 * Prints rounds= and result=.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

unsigned char work_buffer[4096] __attribute__((aligned(4096)));

__attribute__((noinline)) uint64_t pyrebox_work_step(uint64_t round) {
    uint64_t x = round | 1;
#pragma GCC unroll 200
    for (int k = 0; k < 200; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        x ^= x >> 29;
    }
    ((volatile unsigned char*)work_buffer)[round % sizeof work_buffer] = (unsigned char)x;
    return x;
}

int main(int argc, char** argv) {
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 0) : 20000;
    int work = argc > 2 ? atoi(argv[2]) : 1;
    uint64_t result = 0;
    for (unsigned long r = 0; r < rounds; r++) {
        if (work)
            result += pyrebox_work_step(r);
        result += (uint64_t)syscall(SYS_getppid);
    }
    printf("rounds=%lu\nresult=%llu\n", rounds, (unsigned long long)result);
    return 0;
}
