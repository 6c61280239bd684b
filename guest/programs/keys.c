/* keys N: reads N characters typed on the guest's keyboard and prints them.
 *
 * The keyboard reaches the foreground virtual terminal (/dev/tty1), not the
 * serial console the commands run on: the program opens tty1 in raw mode
 * (no echo, no line editing, no signals), prints `ready=N`, calls
 * pyrebox_keys_ready(N) (a fixed address for scripts to hook, e.g. to type
 * into it with api.send_key), then reads N bytes and prints `keys=<text>` and
 * `hex=<bytes in hex>`. Gives up after 60 s (exit status 2). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

__attribute__((noinline)) void pyrebox_keys_ready(int n) {
    __asm__ volatile("" : : "r"(n) : "memory");
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 255) {
        fprintf(stderr, "usage: keys N (1..255)\n");
        return 1;
    }
    int fd = open("/dev/tty1", O_RDWR | O_NOCTTY);
    if (fd < 0) {
        perror("open /dev/tty1");
        return 1;
    }
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        perror("tcgetattr");
        return 1;
    }
    t.c_lflag &= ~(ICANON | ECHO | ISIG | IEXTEN);
    t.c_iflag &= ~(ICRNL | INLCR | IGNCR | IXON);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(fd, TCSANOW, &t);
    tcflush(fd, TCIFLUSH);
    alarm(60);
    printf("ready=%d\n", n);
    fflush(stdout);
    pyrebox_keys_ready(n);
    char buf[256];
    int got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, (size_t)(n - got));
        if (r <= 0) {
            perror("read /dev/tty1");
            return 2;
        }
        got += (int)r;
    }
    buf[got] = 0;
    printf("keys=%s\nhex=", buf);
    for (int i = 0; i < got; ++i) {
        printf("%02x", (unsigned char)buf[i]);
    }
    printf("\n");
    return 0;
}
