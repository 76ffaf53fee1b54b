/*
 * echo_client.c - load for the echo-server demonstration.
 *
 * Usage: echo_client PORT N
 *
 * Opens N TCP connections to 127.0.0.1:PORT, writes one line on each and
 * checks that the same line comes back, prints "ready", then waits in
 * pause() holding every connection open. The test kills it with SIGKILL:
 * the kernel then closes all N connections at once, and the N server
 * children that served them exit together.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Reads exactly n bytes; fails on EOF. */
static void readn(int fd, char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r == 0) {
            fprintf(stderr, "echo_client: server closed the connection early\n");
            exit(1);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        got += (size_t)r;
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    int *fds;
    int n, i;

    if (argc != 3 || (n = atoi(argv[2])) <= 0) {
        fprintf(stderr, "usage: %s PORT N\n", argv[0]);
        return 2;
    }
    fds = calloc((size_t)n, sizeof *fds);
    if (fds == NULL)
        die("calloc");

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)atoi(argv[1]));

    for (i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0)
            die("socket");
        if (connect(fds[i], (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect");
    }

    for (i = 0; i < n; i++) {
        char line[64], echo[64];
        int len = snprintf(line, sizeof line, "hello from connection %d\n", i);

        if (write(fds[i], line, (size_t)len) != len)
            die("write");
        readn(fds[i], echo, (size_t)len);
        if (memcmp(line, echo, (size_t)len) != 0) {
            fprintf(stderr, "echo_client: connection %d: wrong echo\n", i);
            return 1;
        }
    }

    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause(); /* until SIGKILL closes every connection at once */
}
