/*
 * dyn_wait: a dynamic program that waits before it calls into libc, so a
 * debugger can place breakpoints in libc (getpid) and in the program first.
 *
 * Built as an ordinary dynamically linked (PIE) program, like dyn_libc.
 *
 * Output (one key=value per line, stdout flushed after each line):
 *   pid=<decimal pid>
 *   getpid=0x<hex runtime address of libc's getpid (dlsym)>
 *   tag=0x<hex address of pyrebox_tag, a volatile 16-bit global = 0x1234>
 *   waiting                 (then one line is read from stdin; EOF continues)
 *   result=<decimal value returned by the second getpid() call>
 *   tag_value=0x<hex value of pyrebox_tag, read after that call>
 * Without a debugger result equals pid and tag_value is 0x1234.
 * Exit status: 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

volatile unsigned short pyrebox_tag = 0x1234;

int main(void)
{
    char line[256];
    void *getpid_addr = dlsym(RTLD_DEFAULT, "getpid");

    printf("pid=%ld\n", (long)getpid());
    fflush(stdout);
    printf("getpid=0x%lx\n", (unsigned long)getpid_addr);
    fflush(stdout);
    printf("tag=0x%lx\n", (unsigned long)&pyrebox_tag);
    fflush(stdout);
    printf("waiting\n");
    fflush(stdout);
    (void)fgets(line, sizeof(line), stdin);

    long result = (long)getpid();
    printf("result=%ld\n", result);
    fflush(stdout);
    printf("tag_value=0x%x\n", (unsigned)pyrebox_tag);
    fflush(stdout);
    return 0;
}
