/* A program with a SIGCHLD handler and a second thread made with glibc's
 * clone() (glibc does not count it: __libc_single_threaded stays 1), which
 * has SIGCHLD unblocked, so the handler runs there. The main thread blocks
 * SIGCHLD and does a blocking wait4(-1) while child A exits at 20 ms and
 * child B at 150 ms. Without the shim wait4 always returns A after ~20 ms.
 * Under the shim, when the shim's handler (in the clone thread) reaps A into
 * its store before the main thread's kernel wait takes it, the wait returns
 * B ~150 ms later (and A only at the next wait; if B never exited, the wait
 * would hang). 60 rounds; the clone thread spins and both threads share one
 * CPU, which makes the handler win often. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled, stop;
static void on_chld(int sig) { (void)sig; handled++; }
static int thread_fn(void *arg) {
    (void)arg;
    sigset_t s; sigemptyset(&s);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &s, NULL, 8);
    while (!stop) {}
    return 0;
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(void) {
    cpu_set_t one; CPU_ZERO(&one); CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld; sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t chld; sigemptyset(&chld); sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    static char stack[65536];
    int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    if (clone(thread_fn, stack + sizeof stack, flags, NULL) == -1) { perror("clone"); return 2; }
    int bad = 0, rounds = 60;
    double worst = 0;
    for (int i = 0; i < rounds; i++) {
        pid_t b = fork();
        if (b == 0) { usleep(150000); _exit(2); }
        pid_t a = fork();
        if (a == 0) { usleep(20000); _exit(1); }
        double t0 = now();
        int st;
        pid_t got = wait4(-1, &st, 0, NULL);
        double dt = now() - t0;
        if (dt > worst) worst = dt;
        bad += got != a;
        wait4(-1, &st, 0, NULL);
    }
    stop = 1;
    usleep(10000);
    printf("%d of %d first waits did not return A (the child that exited first); slowest %.0f ms\n", bad, rounds, worst * 1000);
    printf("%s\n", bad == 0 ? "PASS" : "FAIL");
    return bad == 0 ? 0 : 1;
}
