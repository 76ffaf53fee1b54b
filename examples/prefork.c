/*
 * prefork.c - a pre-forked worker pool (the Apache prefork pattern).
 *
 * The master listens, starts WORKERS workers with zfork() and restarts each
 * worker that dies, logging its exit status. Each worker accepts on the shared
 * socket and, to show restarts, exits after serving REQUESTS connections with
 * its number of served connections as exit status. pdeathsig (SIGKILL)
 * makes every worker die with the master, however the master ends: no
 * orphaned workers hold the port.
 *
 * The master is a poll() loop over zreap_fd() and a signalfd for SIGTERM.
 *
 * Usage: prefork PORT [WORKERS [REQUESTS]]   (PORT 0: any; defaults 3 and 2)
 * Listens on 127.0.0.1 and prints "listening on PORT". Stops on SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zreap.h>

struct pool {
    int listenfd;
    int requests;
    int failed;
};

/* Echoes one line per connection; returns after `requests` connections. */
static int serve(int listenfd, int requests)
{
    int served = 0;
    while (served < requests) {
        int conn = accept(listenfd, NULL, NULL);
        if (conn == -1) {
            if (errno == EINTR)
                continue;
            return 255;
        }
        char buf[512];
        ssize_t n = read(conn, buf, sizeof buf);
        if (n > 0 && write(conn, buf, (size_t)n) != n)
            n = -1;
        close(conn);
        served++;
    }
    return served;
}

static pid_t start_worker(int listenfd, int requests)
{
    zspawn_options opts;
    zspawn_options_init(&opts);
    opts.pdeathsig = SIGKILL;       /* armed before zfork() returns in the worker */
    pid_t pid = zfork(&opts);
    if (pid == 0) {
        sigset_t term;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_UNBLOCK, &term, NULL);
        _exit(serve(listenfd, requests));
    }
    return pid;
}

/* zreap_all() callback: log the dead worker's status and start another. */
static void restart(pid_t pid, int status, void *ctx)
{
    struct pool *pool = ctx;

    if (WIFEXITED(status))
        printf("worker %d exited with status %d; restarting\n", (int)pid, WEXITSTATUS(status));
    else
        printf("worker %d killed by signal %d; restarting\n", (int)pid, WTERMSIG(status));
    if (start_worker(pool->listenfd, pool->requests) == -1) {
        perror("zfork");
        pool->failed = 1;
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int workers = argc > 2 ? atoi(argv[2]) : 3;
    int requests = argc > 3 ? atoi(argv[3]) : 2;

    int listenfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listenfd == -1 || bind(listenfd, (struct sockaddr *)&addr, sizeof addr) == -1 ||
        listen(listenfd, 128) == -1 || getsockname(listenfd, (struct sockaddr *)&addr, &len) == -1) {
        perror("listen");
        return 1;
    }
    /* Only our workers are in scope; no handler: the loop polls zreap_fd(). */
    if (zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER) == -1) {
        perror("zreap_install");
        return 1;
    }
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    struct pollfd fds[2] = {{.fd = zreap_fd(), .events = POLLIN},
                            {.fd = signalfd(-1, &term, SFD_CLOEXEC), .events = POLLIN}};
    if (fds[0].fd == -1 || fds[1].fd == -1) {
        perror("zreap_fd/signalfd");
        return 1;
    }

    struct pool pool = {.listenfd = listenfd, .requests = requests, .failed = 0};
    for (int i = 0; i < workers; i++)
        if (start_worker(listenfd, requests) == -1) {
            perror("zfork");
            return 1;
        }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("listening on %d\n", ntohs(addr.sin_port));

    while (!pool.failed && !(fds[1].revents & POLLIN)) {
        if (poll(fds, 2, -1) == -1 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        if ((fds[0].revents & POLLIN) && zreap_all(restart, &pool) == -1) {
            perror("zreap_all");
            return 1;
        }
    }
    printf("stopping\n");
    return pool.failed;   /* the workers get SIGKILL from pdeathsig */
}
