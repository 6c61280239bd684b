/*
 * fork_exec: creates a known number of short-lived child processes.
 *
 * Built -static -no-pie.
 *
 * Usage: fork_exec N PROGRAM [ARGS...]
 *
 * Children are made one at a time: fork, the child execv()s PROGRAM with
 * argv = PROGRAM ARGS..., and the parent waits for it before the next fork.
 * Output (one key=value line each, stdout flushed after each line; the
 * children's own output appears between them):
 *   parent=<decimal pid>
 *   child=<decimal pid> status=<exit status>     (N times, in order)
 *   children=<N>
 * status is the child's exit code; 127 when exec failed; 128+signal when the
 * child was killed by a signal.
 * Exit status: 0, 2 on a usage error, 1 if fork or waitpid fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char *end = NULL;
    long count;

    if (argc < 3) {
        fprintf(stderr, "usage: fork_exec N PROGRAM [ARGS...]\n");
        return 2;
    }
    count = strtol(argv[1], &end, 10);
    if (argv[1][0] == '\0' || *end != '\0' || count < 0) {
        fprintf(stderr, "fork_exec: N must be a non-negative integer\n");
        return 2;
    }

    printf("parent=%ld\n", (long)getpid());
    fflush(stdout);

    for (long k = 0; k < count; k++) {
        pid_t child = fork();
        if (child < 0) {
            fprintf(stderr, "fork_exec: fork: %s\n", strerror(errno));
            return 1;
        }
        if (child == 0) {
            execv(argv[2], &argv[2]);
            fprintf(stderr, "fork_exec: execv %s: %s\n", argv[2], strerror(errno));
            _exit(127);
        }

        int wstatus = 0;
        while (waitpid(child, &wstatus, 0) < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "fork_exec: waitpid: %s\n", strerror(errno));
                return 1;
            }
        }
        int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
                     : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus)
                     : 255;
        printf("child=%ld status=%d\n", (long)child, status);
        fflush(stdout);
    }

    printf("children=%ld\n", count);
    fflush(stdout);
    return 0;
}
