/*
 * syscall_seq: a known sequence of system calls, for the system-call
 * tracing tests (the same run under the guest's strace and under PyREBox).
 *
 * Built -static -no-pie.
 *
 * Usage: syscall_seq [THREAD_GETPIDS=100]
 * In order, from the main thread:
 *   1. openat(AT_FDCWD, "/tmp/syscall_seq.txt", O_WRONLY|O_CREAT|O_TRUNC, 0644),
 *      write of the 26 bytes "abcdefghijklmnopqrstuvwxyz", close;
 *   2. openat of the same file O_RDONLY, read of up to 64 bytes (26), close;
 *   3. openat(AT_FDCWD, "/nonexistent/syscall_seq", O_RDONLY): -ENOENT;
 *   4. mmap of 8192 anonymous bytes PROT_READ|PROT_WRITE, mprotect of them
 *      to PROT_READ, munmap;
 *   5. a UDP socket, sendto of the 5 bytes "hello" to 127.0.0.1:9999, close;
 *   6. getpid through `int 0x80` (the 32-bit compat call 20);
 *   7. a thread (clone3 through pthread_create) that calls getpid
 *      THREAD_GETPIDS times through syscall(2), joined;
 *   8. fork; the child execve()s /usr/local/bin/syscall32 2 (a 32-bit
 *      program: the compat entry paths); the parent wait4()s for it.
 * Prints pid=, thread_getpids=, int80_pid=, child=, status= lines.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long thread_getpids = 100;

static void *thread_main(void *arg)
{
    (void)arg;
    for (long i = 0; i < thread_getpids; i++)
        syscall(SYS_getpid);
    return NULL;
}

static long int80_getpid(void)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    return ret;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        thread_getpids = strtol(argv[1], NULL, 0);
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);

    const char *path = "/tmp/syscall_seq.txt";
    const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    int fd = openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, letters, 26) != 26)
        return 1;
    close(fd);
    char buf[64];
    fd = openat(AT_FDCWD, path, O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf) != 26)
        return 1;
    close(fd);
    if (openat(AT_FDCWD, "/nonexistent/syscall_seq", O_RDONLY) >= 0)
        return 1;

    void *map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map, 8192, PROT_READ) != 0 || munmap(map, 8192) != 0)
        return 1;

    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons(9999);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || sendto(s, "hello", 5, 0, (struct sockaddr *)&to, sizeof to) != 5)
        return 1;
    close(s);

    printf("int80_pid=%ld\n", int80_getpid());
    fflush(stdout);

    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_main, NULL) != 0 || pthread_join(thread, NULL) != 0)
        return 1;
    printf("thread_getpids=%ld\n", thread_getpids);
    fflush(stdout);

    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        execl("/usr/local/bin/syscall32", "syscall32", "2", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (wait4(child, &status, 0, NULL) != child)
        return 1;
    printf("child=%d\nstatus=%d\n", (int)child, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
