/*
 * clock_probe: how much guest time passes across a call.
 *
 * Built -static -no-pie.
 *
 * For phase 1 and 2, reads CLOCK_MONOTONIC, calls pyrebox_clock_probe(phase)
 * and reads it again; prints phase<N>_ms=<milliseconds between the reads>.
 * Without a debugger each is 0.
 */
#include <stdio.h>
#include <time.h>

__attribute__((noinline)) void pyrebox_clock_probe(long phase)
{
    __asm__ volatile("" ::"r"(phase) : "memory");
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(void)
{
    pyrebox_clock_probe(0); /* the probe's page is present before the timed calls */
    for (long phase = 1; phase <= 2; phase++) {
        long long start = now_ns();
        pyrebox_clock_probe(phase);
        printf("phase%ld_ms=%lld\n", phase, (now_ns() - start) / 1000000);
    }
    return 0;
}
