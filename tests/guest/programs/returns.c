/*
 * returns: calls with known return values, for the function-return tests
 * (tests/guest/test_function_returns.py compiles it -static -no-pie -O0 at
 * its own text address and copies it into the guest with --file).
 *
 * Usage: returns CALLS DEPTH DIVE
 * In order, from the main thread:
 *   1. pyrebox_square(i) for i in [0, CALLS): returns i*i + 1;
 *   2. pyrebox_fact(DEPTH): DEPTH nested calls (DEPTH >= 1), returning
 *      1!, 2!, ..., DEPTH! innermost first;
 *   3. round 0: pyrebox_dive(DIVE) from a setjmp-guarded call site: DIVE + 1
 *      nested calls, the innermost longjmps back to main, so none returns;
 *      round 1: pyrebox_dive(-1) from the same call site at the same stack
 *      depth, which returns 7 at once;
 *   4. pyrebox_square(100): returns 10001.
 * Prints squares_sum=, fact=, dive=, last= lines.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

static jmp_buf unwind;

__attribute__((noinline)) long pyrebox_square(long i)
{
    return i * i + 1;
}

__attribute__((noinline)) long pyrebox_fact(long n)
{
    return n <= 1 ? 1 : n * pyrebox_fact(n - 1);
}

__attribute__((noinline)) long pyrebox_dive(long n)
{
    if (n < 0)
        return 7;
    if (n == 0)
        longjmp(unwind, 1);
    return 1 + pyrebox_dive(n - 1);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: returns CALLS DEPTH DIVE\n");
        return 2;
    }
    long calls = strtol(argv[1], NULL, 0);
    long depth = strtol(argv[2], NULL, 0);
    long dive = strtol(argv[3], NULL, 0);

    long sum = 0;
    for (long i = 0; i < calls; i++)
        sum += pyrebox_square(i);
    printf("squares_sum=%ld\n", sum);
    printf("fact=%ld\n", pyrebox_fact(depth));

    volatile long result = -1;
    for (volatile int round = 0; round < 2; round++) {
        if (setjmp(unwind) == 0)
            result = pyrebox_dive(round == 0 ? dive : -1);
    }
    printf("dive=%ld\n", result);
    printf("last=%ld\n", pyrebox_square(100));
    fflush(stdout);
    return 0;
}
