/* udp_peer N M PORT: UDP traffic with known payloads over the guest's NIC.
 *
 * Sends N datagrams to 10.0.2.2:9 (QEMU's user-mode gateway; the discard
 * port) from UDP port PORT, datagram i (0-based) carrying udp_payload(i)
 * below, printing `sent=<payload in hex>` for each; then prints
 * `listening=PORT`, calls pyrebox_udp_ready(PORT) (a fixed address for
 * scripts to hook, e.g. to send datagrams in through a host forward), and
 * prints `recv=<payload in hex>` for each of the M datagrams it receives.
 * Gives up after 60 s (exit status 2). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAYLOAD_LEN 48

__attribute__((noinline)) void pyrebox_udp_ready(int port) {
    __asm__ volatile("" : : "r"(port) : "memory");
}

/* "PYREBOX-UDP-SEND-<i, 2 digits>-" then letters from 'a' + i, cycling. */
static void udp_payload(int i, unsigned char *out) {
    int len = snprintf((char *)out, PAYLOAD_LEN + 1, "PYREBOX-UDP-SEND-%02d-", i);
    for (int k = len; k < PAYLOAD_LEN; ++k) {
        out[k] = (unsigned char)('a' + (i + k) % 26);
    }
}

static void print_hex(const char *key, const unsigned char *data, size_t len) {
    printf("%s=", key);
    for (size_t k = 0; k < len; ++k) {
        printf("%02x", data[k]);
    }
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: udp_peer N M PORT\n");
        return 1;
    }
    int n = atoi(argv[1]), m = atoi(argv[2]), port = atoi(argv[3]);
    alarm(60);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                              .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(s, (struct sockaddr *)&any, sizeof any) != 0) {
        perror("bind");
        return 1;
    }
    struct sockaddr_in gateway = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "10.0.2.2", &gateway.sin_addr);
    for (int i = 0; i < n; ++i) {
        unsigned char payload[PAYLOAD_LEN + 1];
        udp_payload(i, payload);
        if (sendto(s, payload, PAYLOAD_LEN, 0, (struct sockaddr *)&gateway, sizeof gateway) < 0) {
            perror("sendto");
            return 1;
        }
        print_hex("sent", payload, PAYLOAD_LEN);
    }
    printf("listening=%d\n", port);
    fflush(stdout);
    pyrebox_udp_ready(port);
    for (int j = 0; j < m; ++j) {
        unsigned char buf[2048];
        ssize_t r = recv(s, buf, sizeof buf, 0);
        if (r < 0) {
            perror("recv");
            return 2;
        }
        print_hex("recv", buf, (size_t)r);
    }
    return 0;
}
