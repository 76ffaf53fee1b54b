/*
 * echo_server.c - the classic forking TCP echo server, fixed with zreap.
 *
 * This is echo_server_handwritten.c (Stevens, UNIX Network Programming,
 * ch. 5) with one change: the hand-written SIGCHLD handler, which calls
 * wait() once per signal and so leaks zombies when children exit together,
 * is replaced by
 *
 *         zreap_install(0);
 *
 * which installs a handler that reaps every exited child, however many
 * exits one SIGCHLD stands for. Nothing else differs.
 *
 * Usage: echo_server PORT     (PORT 0: any free port)
 * Listens on 127.0.0.1 only and prints "listening on PORT" once it accepts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <zreap.h>

#define LISTENQ 1024

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Writes all n bytes, retrying after a signal. */
static ssize_t writen(int fd, const char *buf, size_t n)
{
    size_t left = n;

    while (left > 0) {
        ssize_t w = write(fd, buf, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        left -= (size_t)w;
    }
    return (ssize_t)n;
}

/* Echoes everything the client sends until it closes the connection. */
static void str_echo(int sockfd)
{
    char buf[4096];

    for (;;) {
        ssize_t n = read(sockfd, buf, sizeof buf);
        if (n > 0) {
            if (writen(sockfd, buf, (size_t)n) < 0)
                return;
        } else if (n == 0) {
            return; /* client closed */
        } else if (errno != EINTR) {
            return;
        }
    }
}

static int listen_on(unsigned short port)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        die("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(fd, LISTENQ) < 0)
        die("listen");
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
        die("getsockname");
    printf("listening on %u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    int listenfd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }

    /*
     * THE FIX. This replaces signal(SIGCHLD, sig_chld) and the handler:
     * every child is reaped as soon as it exits, none is left a zombie.
     */
    if (zreap_install(0) == -1) {
        perror("zreap_install");
        return 1;
    }

    listenfd = listen_on((unsigned short)atoi(argv[1]));

    for (;;) {
        pid_t pid;
        int connfd = accept(listenfd, NULL, NULL);

        if (connfd < 0) {
            if (errno == EINTR)
                continue; /* back to accept() after a signal */
            die("accept");
        }

        pid = fork();
        if (pid == 0) { /* child */
            close(listenfd);
            str_echo(connfd);
            exit(0);
        }
        if (pid < 0)
            perror("fork");
        close(connfd); /* parent */
    }
}
