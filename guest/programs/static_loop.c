/*
 * static_loop: a deterministic memory-writing loop for guest tests.
 *
 * Built -static -no-pie -O1, so the addresses it prints are the link-time
 * addresses found in its symbol table (nm) and are the same on every run.
 *
 * Usage: static_loop [ITERATIONS=1000] [wait]
 *
 * Output (one key=value per line, stdout flushed after each line):
 *   pid=<decimal pid>
 *   buffer=0x<hex address of pyrebox_buffer>
 *   function=0x<hex address of pyrebox_step>
 *   waiting                      (only with "wait": then one line is read
 *                                 from stdin; EOF just continues. Before
 *                                 waiting, a 0 is stored at the buffer's last
 *                                 byte, so its page is mapped and writable
 *                                 while the program waits: a debugger can
 *                                 change the buffer and see the checksum
 *                                 change.)
 *   iterations=<N>
 *   checksum=<decimal sum of all 4096 bytes of pyrebox_buffer>
 *
 * pyrebox_step(i) stores (i * 7 + 3) & 0xff at pyrebox_buffer[i % 4096] and
 * is called exactly N times, for i = 0 .. N-1.  Bytes never written stay 0.
 * Exit status: 0, or 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PYREBOX_BUFFER_SIZE 4096

/* Page-aligned so a test can watch exactly one guest page. */
unsigned char pyrebox_buffer[PYREBOX_BUFFER_SIZE] __attribute__((aligned(4096)));

/*
 * Kept out of line and unspecialised so it has one address that is hit once
 * per iteration; the store goes through a volatile pointer so the compiler
 * cannot drop or merge it.
 */
__attribute__((noinline, noclone)) void pyrebox_step(unsigned long i)
{
    volatile unsigned char *slot = &pyrebox_buffer[i % PYREBOX_BUFFER_SIZE];
    *slot = (unsigned char)((i * 7 + 3) & 0xff);
}

static void usage(void)
{
    fprintf(stderr, "usage: static_loop [ITERATIONS=1000] [wait]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned long iterations = 1000;
    int wait_for_line = 0;

    if (argc > 3)
        usage();
    if (argc >= 2) {
        char *end = NULL;
        if (argv[1][0] == '\0' || argv[1][0] == '-')
            usage();
        iterations = strtoul(argv[1], &end, 10);
        if (*end != '\0')
            usage();
    }
    if (argc == 3) {
        if (strcmp(argv[2], "wait") != 0)
            usage();
        wait_for_line = 1;
    }

    printf("pid=%ld\n", (long)getpid());
    fflush(stdout);
    printf("buffer=0x%lx\n", (unsigned long)pyrebox_buffer);
    fflush(stdout);
    printf("function=0x%lx\n", (unsigned long)&pyrebox_step);
    fflush(stdout);

    if (wait_for_line) {
        char line[256];
        /* Maps the buffer's page (bss pages appear on first write); 0 keeps
         * every byte's value. */
        ((volatile unsigned char *)pyrebox_buffer)[PYREBOX_BUFFER_SIZE - 1] = 0;
        printf("waiting\n");
        fflush(stdout);
        /* Any line, or EOF, releases the loop. */
        (void)fgets(line, sizeof(line), stdin);
    }

    for (unsigned long i = 0; i < iterations; i++)
        pyrebox_step(i);

    unsigned long checksum = 0;
    for (size_t k = 0; k < PYREBOX_BUFFER_SIZE; k++)
        checksum += ((volatile unsigned char *)pyrebox_buffer)[k];

    printf("iterations=%lu\n", iterations);
    fflush(stdout);
    printf("checksum=%lu\n", checksum);
    fflush(stdout);
    return 0;
}
