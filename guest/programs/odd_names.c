/*
 * odd_names: an unprivileged process with names introspection must take as
 * bytes, for the hostile-guest tests.
 *
 * Built -static -no-pie.
 *
 * Usage: odd_names [DEPTH=2100 [FILES=0]]
 *   1. sets its name (comm) to the bytes ff fe 6f 64 64 ("\xff\xfeodd", not
 *      UTF-8) with prctl(PR_SET_NAME);
 *   2. maps the 4096-byte file /tmp/bad-\xc3\x28.bin (not UTF-8) read-only;
 *   2b. maps /tmp/forged.so, 8192 bytes whose ELF header claims 65535
 *      program headers of 65535 bytes each;
 *   3. maps the 4096-byte file deep.bin at the end of DEPTH directories
 *      named "dd" under /tmp/deep (made with relative names: the path is
 *      3 * DEPTH + 18 bytes long, beyond PATH_MAX for the default depth);
 *   3b. maps FILES more 4096-byte files, f0 .. f<FILES-1>, beside deep.bin;
 *   4. calls pyrebox_names_ready();
 *   5. forks a child (named as its parent) that exits at once, and waits.
 * Prints pid=, bad_map=, forged_map=, deep_map= (the mappings' addresses), depth=,
 * files= and child=.
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

static void *map_file(const char *path, const void *bytes, size_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, bytes, size) != (ssize_t)size)
        return MAP_FAILED;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    return map;
}

static void *map_new_file(const char *path)
{
    static const char page[4096] = {'P', 'Y', 'R', 'B'};
    return map_file(path, page, sizeof page);
}

/* An ELF64 shared object header whose program header table would be
 * 65535 * 65535 bytes. */
static void *map_forged_elf(const char *path)
{
    static unsigned char image[8192] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    image[16] = 3;                     /* e_type ET_DYN */
    image[18] = 62;                    /* e_machine x86-64 */
    image[32] = 64;                    /* e_phoff */
    image[54] = image[55] = 0xff;      /* e_phentsize */
    image[56] = image[57] = 0xff;      /* e_phnum */
    return map_file(path, image, sizeof image);
}

int main(int argc, char **argv)
{
    long depth = argc > 1 ? strtol(argv[1], NULL, 0) : 2100;
    long files = argc > 2 ? strtol(argv[2], NULL, 0) : 0;
    if (prctl(PR_SET_NAME, "\xff\xfeodd", 0, 0, 0) != 0)
        return 1;
    void *bad = map_new_file("/tmp/bad-\xc3\x28.bin");
    if (bad == MAP_FAILED)
        return 1;
    void *forged = map_forged_elf("/tmp/forged.so");
    if (forged == MAP_FAILED)
        return 1;
    if (mkdir("/tmp/deep", 0755) != 0 || chdir("/tmp/deep") != 0)
        return 1;
    for (long i = 0; i < depth; i++)
        if (mkdir("dd", 0755) != 0 || chdir("dd") != 0)
            return 1;
    void *deep = map_new_file("deep.bin");
    if (deep == MAP_FAILED)
        return 1;
    for (long i = 0; i < files; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%ld", i);
        if (map_new_file(name) == MAP_FAILED)
            return 1;
    }
    printf("pid=%d\nbad_map=%p\nforged_map=%p\ndeep_map=%p\ndepth=%ld\nfiles=%ld\n",
           (int)getpid(), bad, forged, deep, depth, files);
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
