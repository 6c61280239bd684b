/*
 * sigrestart: a blocking read interrupted by a signal, restarted and not,
 * for the system-call tracing tests.
 *
 * Built -static -no-pie.
 *
 * Two rounds, each with a child that waits until this process blocks in
 * read(2) on a pipe (/proc/PPID/syscall names call 0), sends it SIGUSR1
 * and waits for the handler's write(2) to a second pipe:
 *   1. the handler is installed with SA_RESTART: the kernel restarts the
 *      read, which then returns the byte the child writes after the
 *      handler ran (1);
 *   2. without SA_RESTART: the read fails with EINTR (-4).
 * Prints pid=, restarted_read=, interrupted_read=, handled= lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int data_pipe[2], handler_pipe[2];
static volatile int handled;

static void on_usr1(int sig)
{
    (void)sig;
    handled++;
    (void)!write(handler_pipe[1], "h", 1);
}

/* Until `pid` is blocked in read(2). */
static void wait_for_read(pid_t pid)
{
    char path[64], text[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    for (;;) {
        int fd = open(path, O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
        if (fd >= 0)
            close(fd);
        if (n > 2 && text[0] == '0' && text[1] == ' ')
            return;
        usleep(10000);
    }
}

static long round_trip(int restart)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        char h;
        wait_for_read(parent);
        kill(parent, SIGUSR1);
        if (read(handler_pipe[0], &h, 1) != 1)
            _exit(1);
        if (restart && write(data_pipe[1], "A", 1) != 1)
            _exit(1);
        _exit(0);
    }
    char byte;
    long got = read(data_pipe[0], &byte, 1);
    if (got < 0)
        got = -errno;
    waitpid(child, NULL, 0);
    return got;
}

int main(void)
{
    if (pipe(data_pipe) != 0 || pipe(handler_pipe) != 0)
        return 1;
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    long restarted = round_trip(1);
    long interrupted = round_trip(0);
    printf("restarted_read=%ld\ninterrupted_read=%ld\nhandled=%d\n", restarted, interrupted,
           handled);
    return 0;
}
