/*
 * hostile_probe: drives the test kernel module pyrebox_corrupt (loaded
 * first) so that kernel structures are corrupt exactly while
 * pyrebox_probe(1) runs, and whole again at pyrebox_probe(2).
 *
 * Built -static -no-pie.
 *
 *   1. creates and maps the 4096-byte file /tmp/pyrebox_loop.bin;
 *   2. prints pid=, loop_map= (the mapping's address) and one
 *      module=<name> line per line of /proc/modules;
 *   3. writes "1" to /proc/pyrebox_corrupt (corrupt), calls
 *      pyrebox_probe(1), writes "0" (restore), calls pyrebox_probe(2);
 *   4. prints done.
 * Exit status: 0, or 1 with a message when a step fails.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) void pyrebox_probe(long phase)
{
    __asm__ volatile("" ::"r"(phase) : "memory");
}

static int control(const char *what)
{
    int fd = open("/proc/pyrebox_corrupt", O_WRONLY);
    if (fd < 0 || write(fd, what, 1) != 1) {
        perror("/proc/pyrebox_corrupt");
        return -1;
    }
    close(fd);
    return 0;
}

int main(void)
{
    static const char page[4096] = {'L', 'O', 'O', 'P'};
    int fd = open("/tmp/pyrebox_loop.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, page, sizeof page) != (ssize_t)sizeof page) {
        perror("/tmp/pyrebox_loop.bin");
        return 1;
    }
    void *map = mmap(NULL, sizeof page, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("pid=%d\nloop_map=%p\n", (int)getpid(), map);
    FILE *modules = fopen("/proc/modules", "r");
    char line[512];
    while (modules && fgets(line, sizeof line, modules)) {
        line[strcspn(line, " \n")] = 0;
        printf("module=%s\n", line);
    }
    if (modules)
        fclose(modules);
    fflush(stdout);
    /* Touch the probe's page before the kernel is corrupt (no fault then). */
    pyrebox_probe(0);
    if (control("1") != 0)
        return 1;
    pyrebox_probe(1);
    if (control("0") != 0)
        return 1;
    pyrebox_probe(2);
    printf("done\n");
    return 0;
}
