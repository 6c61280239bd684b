/*
 * fork_getpid: a dynamic program whose processes call libc's getpid a known
 * number of times each, for breakpoints that follow child processes.
 *
 * Usage: fork_getpid [CHILDREN]      (default 3)
 *        fork_getpid --exec CALLS    (what the last child execs)
 * The parent calls getpid once and prints pid=<pid>; then, one at a time
 * (each waited for before the next), forks CHILDREN children, child i
 * (1-based) calling getpid i times and printing child=<pid> calls=<i>; then
 * forks one more child that execs this program as `fork_getpid --exec 4`,
 * which calls getpid 4 times and prints exec=<pid> calls=4. The parent
 * ends with one more getpid call: parent=<pid> calls=2.
 * stdout is flushed after each line. Exit status: 0 when every child
 * exited with status 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long calls(int n)
{
    long pid = 0;
    for (int i = 0; i < n; i++)
        pid = (long)getpid();
    return pid;
}

static int reap(pid_t child)
{
    int status;
    return waitpid(child, &status, 0) == child && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--exec") == 0) {
        int n = atoi(argv[2]);
        printf("exec=%ld calls=%d\n", calls(n), n);
        fflush(stdout);
        return 0;
    }
    int children = argc > 1 ? atoi(argv[1]) : 3;
    int ok = 1;
    printf("pid=%ld\n", calls(1));
    fflush(stdout);
    for (int i = 1; i <= children; i++) {
        pid_t child = fork();
        if (child == 0) {
            printf("child=%ld calls=%d\n", calls(i), i);
            fflush(stdout);
            _exit(0);
        }
        ok &= child > 0 && reap(child);
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return 1;
    self[len] = 0;  /* the file itself, so the exec'd process is named fork_getpid */
    pid_t child = fork();
    if (child == 0) {
        execl(self, "fork_getpid", "--exec", "4", (char *)NULL);
        _exit(127);
    }
    ok &= child > 0 && reap(child);
    printf("parent=%ld calls=2\n", calls(1));
    fflush(stdout);
    return ok ? 0 : 1;
}
