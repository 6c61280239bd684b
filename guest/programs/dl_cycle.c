/*
 * dl_cycle: loads a shared library with dlopen, reports where it was
 * mapped, calls into it, and unloads it with dlclose.
 *
 * Usage: dl_cycle [LIBRARY]   (default /usr/local/lib/libdltest.so)
 *
 * Output (one key=value per line, stdout flushed after each line):
 *   pid=<decimal pid>
 *   libc_base=0x<hex lowest address of libc.so.6's mappings in /proc/self/maps>
 *   libc_size=0x<hex highest end - lowest start of those mappings>
 *   lib_base=0x<hex lowest address of LIBRARY's mappings after dlopen>
 *   lib_size=0x<hex highest end - lowest start of those mappings>
 *   dltest_answer=0x<hex address of dltest_answer, as dlsym resolved it>
 *   answer=<dltest_answer(20), i.e. 41 for libdltest>
 *   mapped_after_close=<number of LIBRARY's mappings left after dlclose>
 * Exit status: 0; 1 if dlopen, dlsym or dlclose fails.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The span of the mappings whose path ends with `suffix` in
 * /proc/self/maps; returns how many mappings there are. */
static int span_of(const char *suffix, unsigned long *low, unsigned long *high)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int count = 0;
    size_t suffix_len = strlen(suffix);

    *low = ~0UL;
    *high = 0;
    if (maps == NULL)
        return 0;
    while (fgets(line, sizeof line, maps) != NULL) {
        unsigned long start, end;
        size_t len = strcspn(line, "\n");
        line[len] = '\0';
        if (len < suffix_len || strcmp(line + len - suffix_len, suffix) != 0)
            continue;
        if (sscanf(line, "%lx-%lx", &start, &end) != 2)
            continue;
        if (start < *low)
            *low = start;
        if (end > *high)
            *high = end;
        count++;
    }
    fclose(maps);
    return count;
}

int main(int argc, char **argv)
{
    const char *library = argc > 1 ? argv[1] : "/usr/local/lib/libdltest.so";
    unsigned long low, high;

    printf("pid=%ld\n", (long)getpid());
    fflush(stdout);
    if (span_of("/libc.so.6", &low, &high) > 0) {
        printf("libc_base=0x%lx\nlibc_size=0x%lx\n", low, high - low);
        fflush(stdout);
    }

    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        fprintf(stderr, "dl_cycle: dlopen: %s\n", dlerror());
        return 1;
    }
    span_of(library, &low, &high);
    printf("lib_base=0x%lx\nlib_size=0x%lx\n", low, high - low);
    fflush(stdout);

    int (*answer)(int) = (int (*)(int))dlsym(handle, "dltest_answer");
    if (answer == NULL) {
        fprintf(stderr, "dl_cycle: dlsym: %s\n", dlerror());
        return 1;
    }
    printf("dltest_answer=0x%lx\n", (unsigned long)answer);
    printf("answer=%d\n", answer(20));
    fflush(stdout);

    if (dlclose(handle) != 0) {
        fprintf(stderr, "dl_cycle: dlclose: %s\n", dlerror());
        return 1;
    }
    printf("mapped_after_close=%d\n", span_of(library, &low, &high));
    fflush(stdout);
    return 0;
}
