/*
 * fork_storm: a dynamic program that forks BATCHES x PER_BATCH children
 * (default 30 x 100) that exit at once. Each batch is reaped only after all
 * its children were forked, so children exit and stay zombies while their
 * siblings are forked: the kernel reuses a zombie's freed mm_struct for a
 * later child, the case process tracking must tell apart.
 *
 * Usage: fork_storm [BATCHES [PER_BATCH]]
 * Output (stdout, flushed after each line):
 *   pid=<decimal pid of the parent>
 *   batch=<i> pids=<pid>,<pid>,...   (one line per batch, fork order)
 *   children=<total forked>
 * Exit status: 0 when every child exited with status 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int batches = argc > 1 ? atoi(argv[1]) : 30;
    int per_batch = argc > 2 ? atoi(argv[2]) : 100;
    int total = 0, failed = 0;

    printf("pid=%ld\n", (long)getpid());
    fflush(stdout);
    for (int b = 0; b < batches; b++) {
        printf("batch=%d pids=", b);
        for (int i = 0; i < per_batch; i++) {
            pid_t child = fork();
            if (child < 0) {
                perror("fork");
                return 1;
            }
            if (child == 0) {
                _exit(0);
            }
            printf(i ? ",%ld" : "%ld", (long)child);
            total++;
        }
        printf("\n");
        fflush(stdout);
        for (int i = 0; i < per_batch; i++) {
            int status;
            if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                failed++;
            }
        }
    }
    printf("children=%d\n", total);
    fflush(stdout);
    return failed ? 1 : 0;
}
