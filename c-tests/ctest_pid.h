/* Forcing pid reuse in tests, deterministically: a process with CAP_SYS_ADMIN
 * over its pid namespace writes /proc/sys/kernel/ns_last_pid (the CRIU
 * technique), and the next process it creates gets the pid after that. The
 * tests run such programs under `unshare --user --map-root-user --pid --fork
 * --mount-proc`, which needs no real root. */
#ifndef ZREAP_CTEST_PID_H
#define ZREAP_CTEST_PID_H

#include "ctest.h"

/* Opened once, early: a test may fill its fd table before it forces a pid. */
static int ctest_ns_last_pid_fd = -1;

static inline int ctest_pid_control_open(void) {
    ctest_ns_last_pid_fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    return ctest_ns_last_pid_fd;
}

/* The next process this one creates gets `pid`. Returns 0, or -1 when the pid
 * namespace cannot be steered. */
static inline int ctest_next_pid_is(pid_t pid) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%d", (int)pid - 1);
    return pwrite(ctest_ns_last_pid_fd, buf, (size_t)n, 0) == n ? 0 : -1;
}

/* In a new pid namespace the program is its init: signals from inside it with
 * default dispositions are ignored, the deadline included. So init forks the
 * test proper, passes its exit status on, and reaps whatever is orphaned. */
static inline void ctest_leave_ns_init(void) {
    if (getpid() != 1) return;
    pid_t worker = fork();
    if (worker == -1) {
        perror("fork");
        _exit(1);
    }
    if (worker == 0) return;
    alarm(0);
    for (;;) {
        int st;
        pid_t done = wait(&st);
        if (done == worker) _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        if (done == -1 && errno != EINTR) _exit(1);
    }
}

/* A child that waits for a byte on `gate` (or EOF), then exits `code`. */
static inline pid_t ctest_gated_child(pid_t (*make)(void), int gate, int code) {
    pid_t pid = make();
    if (pid == 0) {
        char byte;
        while (read(gate, &byte, 1) == -1 && errno == EINTR) {
        }
        _exit(code);
    }
    return pid;
}

#endif
