/*
 * reap_parent.c MODE N - a parent that never waits, for cli/tests/reap.rs.
 * It forks N children that exit with varied statuses (printed as
 * "child PID STATUS", STATUS in waitpid's encoding) and waits, without
 * reaping, until each is a zombie; blocks SIGUSR2 and SIGPIPE (a signal mask
 * to compare); prints "ready PID [PORT]"; then sits in one call, chosen by
 * MODE, and prints "result ..." when the call returns:
 *   epoll      epoll_wait on stdin           "result epoll_wait RET ERRNO"
 *   nanosleep  nanosleep(5 s)                "result nanosleep RET ERRNO MILLISECONDS"
 *   read       read(stdin, 1 byte)           "result read RET ERRNO"
 *   accept     accept on 127.0.0.1:PORT      "result accept RET ERRNO"
 *   pause      pause() until SIGUSR1         "result pause RET ERRNO HANDLED"
 *   busy       a hash loop until SIGUSR1     "result busy ITERATIONS HASH RECOMPUTED"
 *   threads    the children are forked by a second thread, which stays;
 *              the main thread reads stdin   "result read RET ERRNO"
 *   dies       reads stdin; a second thread SIGKILLs the process as soon as
 *              its first child is reaped
 *   dstate     vfork()s a child that sleeps before exec: the parent waits
 *              for it in state D
 * Every mode counts SIGRTMIN+1 sent with sigqueue by its parent (the test)
 * and adds "rt COUNT SUM" (SUM of the values) to its result line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1;
static volatile long rt_count, rt_sum;
static pid_t *kids;
static int nkids;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void on_usr1(int sig)
{
    (void)sig;
    usr1++;
}

/* Counts the queued signals that really come from our parent, with their value. */
static void on_rt(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    if (si->si_code == SI_QUEUE && si->si_pid == getppid()) {
        rt_count++;
        rt_sum += si->si_value.sival_int;
    }
}

static void plant(void)
{
    int i;

    kids = calloc((size_t)nkids, sizeof *kids);
    if (!kids)
        die("calloc");
    for (i = 0; i < nkids; i++) {
        kids[i] = fork();
        if (kids[i] < 0)
            die("fork");
        if (kids[i] == 0) {
            if (i % 3 == 2) {
                signal(SIGTERM, SIG_DFL);
                raise(SIGTERM);
            }
            _exit(i % 3 == 0 ? 0 : 40 + i % 50);
        }
    }
    for (i = 0; i < nkids; i++) {
        siginfo_t si;
        while (waitid(P_PID, (id_t)kids[i], &si, WEXITED | WNOWAIT) < 0)
            if (errno != EINTR)
                die("waitid");
        printf("child %d %d\n", (int)kids[i],
               si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status);
    }
}

static void *plant_thread(void *arg)
{
    int *done = arg;

    plant();
    __atomic_store_n(done, 1, __ATOMIC_SEQ_CST);
    for (;;)
        pause();
    return NULL;
}

/* Kills the whole process once the lowest-pid child (zreap's first) is reaped. */
static void *killer_thread(void *arg)
{
    pid_t first = kids[0];
    int i;

    (void)arg;
    for (i = 1; i < nkids; i++)
        if (kids[i] < first)
            first = kids[i];
    while (kill(first, 0) == 0)
        usleep(100);
    kill(getpid(), SIGKILL);
    return NULL;
}

static void ready(int port)
{
    if (port)
        printf("ready %d %d\n", (int)getpid(), port);
    else
        printf("ready %d\n", (int)getpid());
    fflush(stdout);
}

static void result(const char *fmt, long a, long b, long c)
{
    printf(fmt, a, b, c);
    printf(" rt %ld %ld\n", rt_count, rt_sum);
    fflush(stdout);
}

static uint64_t hash_step(uint64_t h, uint64_t i)
{
    return (h ^ i) * 0x100000001b3ULL + (h >> 29);
}

int main(int argc, char **argv)
{
    const char *mode;
    struct sigaction sa;
    sigset_t mask;
    char c;
    long r;

    if (argc != 3)
        return 2;
    mode = argv[1];
    nkids = atoi(argv[2]);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART: pause() returns EINTR for it */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) < 0)
        die("sigaction");
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    if (sigaction(SIGRTMIN + 1, &sa, NULL) < 0)
        die("sigaction");
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGPIPE);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");

    if (strcmp(mode, "threads") == 0) {
        pthread_t t;
        int done = 0;
        if (pthread_create(&t, NULL, plant_thread, &done) != 0)
            die("pthread_create");
        while (!__atomic_load_n(&done, __ATOMIC_SEQ_CST))
            usleep(1000);
    } else {
        plant();
    }

    if (strcmp(mode, "epoll") == 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = 0 }, out;
        int ep = epoll_create1(0);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0)
            die("epoll");
        ready(0);
        r = epoll_wait(ep, &out, 1, -1);
        result("result epoll_wait %ld %ld", r, r < 0 ? errno : 0, 0);
    } else if (strcmp(mode, "nanosleep") == 0) {
        struct timespec t0, t1, d = { 5, 0 };
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ready(0);
        r = nanosleep(&d, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        result("result nanosleep %ld %ld %ld", r, r < 0 ? errno : 0,
               (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    } else if (strcmp(mode, "read") == 0 || strcmp(mode, "threads") == 0) {
        ready(0);
        r = read(0, &c, 1);
        result("result read %ld %ld", r, r < 0 ? errno : 0, 0);
    } else if (strcmp(mode, "accept") == 0) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1) < 0 ||
            getsockname(s, (struct sockaddr *)&a, &len) < 0)
            die("socket");
        ready(ntohs(a.sin_port));
        r = accept(s, NULL, NULL);
        result("result accept %ld %ld", r, r < 0 ? errno : 0, 0);
    } else if (strcmp(mode, "pause") == 0) {
        ready(0);
        r = pause();
        result("result pause %ld %ld %ld", r, r < 0 ? errno : 0, usr1);
    } else if (strcmp(mode, "busy") == 0) {
        uint64_t h = 1, h2 = 1, i = 0, j;
        ready(0);
        while (!usr1)
            h = hash_step(h, i++);
        for (j = 0; j < i; j++)
            h2 = hash_step(h2, j);
        result("result busy %ld %ld %ld", (long)i, (long)h, (long)h2);
    } else if (strcmp(mode, "dies") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, killer_thread, NULL) != 0)
            die("pthread_create");
        ready(0);
        r = read(0, &c, 1);
        result("result read %ld %ld", r, r < 0 ? errno : 0, 0);
    } else if (strcmp(mode, "dstate") == 0) {
        ready(0);
        if (vfork() == 0) {
            sleep(600); /* before exec: the parent stays in vfork, state D */
            _exit(0);
        }
        result("result vfork %ld %ld", 0, 0, 0);
    } else {
        return 2;
    }
    return 0;
}
