/* One thread, a SIGCHLD handler, SIGCHLD blocked, a blocking wait4(-1). A
 * SIGALRM handler (SA_RESTART) that runs during the wait unblocks SIGCHLD
 * for its own length (the mask is put back when it returns), so the
 * SIGCHLD handler runs inside it. The alarm fires at 20 ms and its handler
 * lasts 100 ms; child A exits at 50 ms (inside it), child B exits at 1500 ms. Without the shim wait4 returns A as soon
 * as it exits. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t handled;
static void on_chld(int sig) { (void)sig; handled++; }
static void on_alrm(int sig) {
    (void)sig;
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    struct timespec t = {0, 100000000};
    while (nanosleep(&t, &t) == -1) {}
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld; sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, NULL);
    sigset_t chld; sigemptyset(&chld); sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    pid_t b = fork();
    if (b == 0) { usleep(1500000); _exit(2); }
    pid_t a = fork();
    if (a == 0) { usleep(50000); _exit(1); }
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    double t0 = now();
    int st;
    pid_t got = wait4(-1, &st, 0, NULL);
    double dt = now() - t0;
    printf("first wait4(-1): %s after %.0f ms; handler ran %d\n", got == a ? "A" : got == b ? "B" : "?", dt * 1000, (int)handled);
    pid_t got2 = wait4(-1, &st, 0, NULL);
    printf("second wait4(-1): %s\n", got2 == a ? "A" : got2 == b ? "B" : "?");
    int ok = got == a && dt < 1.0;
    printf("%s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
