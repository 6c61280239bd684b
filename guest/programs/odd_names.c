/*
 * odd_names: an unprivileged process with names introspection must take as
 * bytes, for the hostile-guest tests.
 *
 * Built -static -no-pie.
 *
 * Usage: odd_names [DEPTH=2100]
 *   1. sets its name (comm) to the bytes ff fe 6f 64 64 ("\xff\xfeodd", not
 *      UTF-8) with prctl(PR_SET_NAME);
 *   2. maps the 4096-byte file /tmp/bad-\xc3\x28.bin (not UTF-8) read-only;
 *   3. maps the 4096-byte file deep.bin at the end of DEPTH directories
 *      named "dd" under /tmp/deep (made with relative names: the path is
 *      3 * DEPTH + 18 bytes long, beyond PATH_MAX for the default depth);
 *   4. calls pyrebox_names_ready();
 *   5. forks a child (named as its parent) that exits at once, and waits.
 * Prints pid=, bad_map=, deep_map= (the mappings' addresses), depth= and
 * child=.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) void pyrebox_names_ready(void)
{
    __asm__ volatile("" ::: "memory");
}

static void *map_new_file(const char *path)
{
    char page[4096] = {'P', 'Y', 'R', 'B'};
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, page, sizeof page) != sizeof page)
        return MAP_FAILED;
    void *map = mmap(NULL, sizeof page, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    return map;
}

int main(int argc, char **argv)
{
    long depth = argc > 1 ? strtol(argv[1], NULL, 0) : 2100;
    if (prctl(PR_SET_NAME, "\xff\xfeodd", 0, 0, 0) != 0)
        return 1;
    void *bad = map_new_file("/tmp/bad-\xc3\x28.bin");
    if (bad == MAP_FAILED)
        return 1;
    if (mkdir("/tmp/deep", 0755) != 0 || chdir("/tmp/deep") != 0)
        return 1;
    for (long i = 0; i < depth; i++)
        if (mkdir("dd", 0755) != 0 || chdir("dd") != 0)
            return 1;
    void *deep = map_new_file("deep.bin");
    if (deep == MAP_FAILED)
        return 1;
    printf("pid=%d\nbad_map=%p\ndeep_map=%p\ndepth=%ld\n", (int)getpid(), bad, deep, depth);
    fflush(stdout);
    pyrebox_names_ready();
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    if (child < 0 || waitpid(child, NULL, 0) != child)
        return 1;
    printf("child=%d\n", (int)child);
    return 0;
}
