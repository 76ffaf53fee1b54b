/*
 * seed_echo_server.c - the classic forking TCP echo server (Stevens, UNP
 * ch. 5), as people write it: one child per connection, and a SIGCHLD
 * handler installed by signal() that calls wait() ONCE.
 *
 * It is the seed program of the LD_PRELOAD shim tests (tests/preload.rs):
 * without the shim it leaks zombies when many connections close at once
 * (SIGCHLD does not queue); under libzreap_preload.so the handler is called
 * once per exited child and it leaks none.
 *
 * The one addition to the classic code: the handler counts its calls. On
 * SIGUSR1 the server writes that count (decimal and a newline) to the file
 * named by $SEED_COUNT_FILE (written to "$SEED_COUNT_FILE.tmp", then renamed,
 * so a reader never sees a partial number).
 *
 * Usage: seed_echo_server PORT     (PORT 0: any free port)
 * Listens on 127.0.0.1 only and prints "listening on PORT" once it accepts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define LISTENQ 1024

static volatile sig_atomic_t handler_calls; /* the test's counter */
static char count_path[4096], count_tmp[4096];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* The classic handler: one wait() per signal. */
static void sig_chld(int signo)
{
    pid_t pid;
    int stat;

    (void)signo;
    handler_calls++; /* the test's counter: the only change */
    pid = wait(&stat);
    (void)pid;
}

/* SIGUSR1: write the count of handler calls to $SEED_COUNT_FILE.
 * Async-signal-safe: open, write, close, rename; errno is preserved. */
static void report_count(int signo)
{
    char buf[32];
    int len = 0, saved = errno, fd;
    unsigned long n = (unsigned long)handler_calls;
    char digits[24];
    int d = 0;

    (void)signo;
    if (count_path[0] == '\0')
        return;
    do {
        digits[d++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (d > 0)
        buf[len++] = digits[--d];
    buf[len++] = '\n';
    fd = open(count_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, buf, (size_t)len) == len) {
            close(fd);
            rename(count_tmp, count_path);
        } else {
            close(fd);
        }
    }
    errno = saved;
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
    const char *path = getenv("SEED_COUNT_FILE");
    struct sigaction usr1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    if (path != NULL && strlen(path) + 5 < sizeof count_path) {
        strcpy(count_path, path);
        snprintf(count_tmp, sizeof count_tmp, "%s.tmp", path);
    }
    memset(&usr1, 0, sizeof usr1);
    usr1.sa_handler = report_count;
    usr1.sa_flags = SA_RESTART;
    sigemptyset(&usr1.sa_mask);
    if (sigaction(SIGUSR1, &usr1, NULL) < 0)
        die("sigaction(SIGUSR1)");

    signal(SIGCHLD, sig_chld);

    listenfd = listen_on((unsigned short)atoi(argv[1]));

    for (;;) {
        pid_t pid;
        int connfd = accept(listenfd, NULL, NULL);

        if (connfd < 0) {
            if (errno == EINTR)
                continue; /* back to accept() after the handler ran */
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
