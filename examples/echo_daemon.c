/*
 * echo_daemon.c - the zreap echo server (echo_server.c) run as a daemon.
 *
 * Usage: echo_daemon PORT PIDFILE
 *
 * The process you start is only a launcher: zdaemonize() double-forks, and
 * the launcher waits (ZDAEMON_WAIT_READY) until the daemon has bound
 * 127.0.0.1:PORT and called listen(). Then the launcher exits 0: by that time
 * the pidfile holds the daemon's pid, and connections are accepted. If the
 * daemon cannot start (the port is taken, the pidfile is locked by a running
 * daemon, ...), the launcher prints one line on stderr and exits 1.
 *
 *     echo_daemon 7007 /tmp/echo_daemon.pid && echo started
 *     kill $(cat /tmp/echo_daemon.pid)        # SIGTERM: clean stop
 *
 * On SIGTERM the daemon closes its listening socket and calls exit(0), which
 * removes the pidfile. Connections still open are served to their end by
 * their own processes. Exit codes of the launcher: 0 started, 1 failed,
 * 2 usage.
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
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <zreap.h>

#define LISTENQ 1024

static volatile sig_atomic_t stop;

static void on_sigterm(int sig)
{
    (void)sig;
    stop = 1;
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

/* A non-blocking listening socket on 127.0.0.1:port, or -1 with errno set. */
static int listen_on(unsigned short port)
{
    struct sockaddr_in addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(fd, LISTENQ) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* In the daemon, before it is ready: tell the launcher why we cannot start,
 * and go. exit() (not _exit()) removes the pidfile. */
static void fail(int err)
{
    zdaemon_ready(err);
    exit(1);
}

int main(int argc, char **argv)
{
    zdaemon_options opts;
    struct sigaction sa;
    sigset_t term, unblocked;
    char *end;
    long port;
    int listenfd;

    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT PIDFILE\n", argv[0]);
        return 2;
    }
    port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "%s: bad port: %s\n", argv[0], argv[1]);
        return 2;
    }

    /*
     * Become the daemon. The launcher never returns from here: it exits 0
     * once we call zdaemon_ready(0), or 1 (with one line on stderr) if we
     * report an error or die first. Only bad options return -1.
     */
    zdaemon_options_init(&opts);
    opts.flags = ZDAEMON_WAIT_READY;
    opts.pidfile = argv[2];
    if (zdaemonize(&opts) == -1) {
        perror("zdaemonize");
        return 1;
    }

    /*
     * The daemon: cwd "/", umask 0, stdio on /dev/null, no other fd open but
     * the pidfile's lock and the report to the launcher.
     *
     * SIGTERM sets a flag. It stays blocked except while we wait in ppoll(),
     * so it cannot slip in between checking the flag and going to sleep; and
     * no SA_RESTART, so a wait it interrupts returns EINTR.
     */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &term, &unblocked) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        fail(errno);
    sigdelset(&unblocked, SIGTERM);

    /* The one-line fix of echo_server.c: every child is reaped as it exits. */
    if (zreap_install(0) == -1)
        fail(errno);

    listenfd = listen_on((unsigned short)port);
    if (listenfd < 0)
        fail(errno); /* e.g. EADDRINUSE: the launcher prints it and exits 1 */

    /* Listening: connections queue from now on. The launcher exits 0. */
    zdaemon_ready(0);

    while (!stop) {
        struct pollfd p = {listenfd, POLLIN, 0};
        pid_t pid;
        int connfd;

        if (ppoll(&p, 1, NULL, &unblocked) < 0) {
            if (errno == EINTR)
                continue; /* SIGTERM (or SIGCHLD): check the flag */
            exit(1);
        }
        connfd = accept4(listenfd, NULL, NULL, SOCK_CLOEXEC);
        if (connfd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                continue;
            exit(1);
        }

        pid = fork();
        if (pid == 0) { /* child: serves one connection, SIGTERM kills it */
            signal(SIGTERM, SIG_DFL);
            sigprocmask(SIG_SETMASK, &unblocked, NULL);
            close(listenfd);
            str_echo(connfd);
            exit(0); /* does not touch the pidfile: that is the daemon's */
        }
        close(connfd); /* parent; a failed fork drops the connection */
    }

    close(listenfd);
    exit(0); /* removes the pidfile */
}
