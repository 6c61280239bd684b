/*
 * dyn_libc: reports where the dynamic loader placed libc in this process.
 *
 * Built as an ordinary dynamically linked (PIE) program against the host
 * glibc, which the guest image carries at the same paths.
 *
 * Output (one key=value per line, stdout flushed after each line):
 *   libc_base=0x<hex load bias (dlpi_addr) of the object named *libc.so.6*>
 *   libc_path=<its dlpi_name, e.g. /lib/x86_64-linux-gnu/libc.so.6>
 *   getpid=0x<hex runtime address of getpid, as the loader resolved it>
 *   pid=<decimal pid>
 * So getpid - libc_base is getpid's offset in that libc.so.6 file.
 * Exit status: 0, or 1 if no libc.so.6 is loaded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct found {
    unsigned long base;
    const char *name;
};

static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
    struct found *found = data;
    (void)size;
    if (info->dlpi_name != NULL && strstr(info->dlpi_name, "libc.so.6") != NULL) {
        found->base = (unsigned long)info->dlpi_addr;
        found->name = info->dlpi_name;
        return 1; /* stop iterating */
    }
    return 0;
}

int main(void)
{
    struct found found = {0, NULL};

    dl_iterate_phdr(find_libc, &found);
    if (found.name == NULL) {
        fprintf(stderr, "dyn_libc: libc.so.6 not found among loaded objects\n");
        return 1;
    }

    /* dlsym gives libc's own definition, never a PLT stub of this program. */
    void *getpid_addr = dlsym(RTLD_DEFAULT, "getpid");

    printf("libc_base=0x%lx\n", found.base);
    fflush(stdout);
    printf("libc_path=%s\n", found.name);
    fflush(stdout);
    printf("getpid=0x%lx\n", (unsigned long)getpid_addr);
    fflush(stdout);
    printf("pid=%ld\n", (long)getpid());
    fflush(stdout);
    return 0;
}
