/* Exactly once, with the right status, under pid reuse: a pid stops being an
 * identity once the library has reaped it, and the kernel may hand it to the
 * next child at once. Each scenario forces the reuse deterministically
 * (ctest_pid.h) and runs in a forked process of its own (fresh library state):
 *
 * stale-untracked  (ALL scope) a plain child exits 13 and is reaped by the
 *                  handler, nobody collects it; a zfork/zspawn child gets its
 *                  pid: zwait(pid, WNOHANG) must say "still running" and zwait
 *                  must return 42, never the stale 13, which zreap_all reports.
 * reused-tracked   (ALL and OWN) tracked T1 exits 7 and is reaped; tracked T2
 *                  gets its pid: zwait(pid) returns 7 first (creation order),
 *                  then T2's 9; nothing is left for zreap_all.
 * fallback-foreign (OWN, no pidfd) tracked T has no pidfd (fd table full); a
 *                  foreign waitpid takes it; a plain fork() child U gets its pid
 *                  and exits 77: zreap must not reap U (the program's own
 *                  waitpid gets 77) and zwait(T) must fail with ECHILD. */
#include "ctest.h"
#include "ctest_pid.h"

#include <sys/resource.h>

static pid_t tracked_fork(void) { return zfork(NULL); }

static int reported_pid, reported_status, reported_count;
static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    reported_pid = pid;
    reported_status = wstatus;
    reported_count++;
}

/* Waits until the library has reaped `pid` (its /proc entry is gone). */
static void wait_reaped(pid_t pid) {
    char state;
    pid_t ppid;
    WAIT_UNTIL(ctest_proc_stat(pid, &state, &ppid) == -1, 5000);
    CHECK(ctest_proc_stat(pid, &state, &ppid) == -1);
}

static void stale_untracked(int use_spawn) {
    CHECK(zreap_install(0) == 0);
    pid_t old = fork();
    if (old == 0) _exit(13);
    wait_reaped(old);
    CHECK(ctest_next_pid_is(old) == 0);
    int gate[2];
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    pid_t pid;
    if (use_spawn) {
        zspawn_options opts;
        zspawn_options_init(&opts);
        opts.stdin_fd = gate[0];
        char *argv[] = {"sh", "-c", "read x; exit 42", NULL};
        pid = zspawn("/bin/sh", argv, NULL, &opts);
    } else {
        pid = ctest_gated_child(tracked_fork, gate[0], 42);
    }
    close(gate[0]);
    CHECK(pid == old);
    int st = -1;
    CHECK(zwait(pid, &st, WNOHANG) == 0);
    CHECK(write(gate[1], "x\n", 2) == 2);
    close(gate[1]);
    CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 42);
    CHECK(zreap_all(on_exit_cb, NULL) == 1);
    CHECK(reported_pid == old && WIFEXITED(reported_status) && WEXITSTATUS(reported_status) == 13);
    CHECK(ctest_zombies() == 0);
}

static void reused_tracked(unsigned flags) {
    CHECK(zreap_install(flags) == 0);
    pid_t t1 = zfork(NULL);
    if (t1 == 0) _exit(7);
    wait_reaped(t1);
    CHECK(ctest_next_pid_is(t1) == 0);
    int gate[2];
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    pid_t t2 = ctest_gated_child(tracked_fork, gate[0], 9);
    close(gate[0]);
    CHECK(t2 == t1);
    int st = -1;
    CHECK(zwait(t1, &st, WNOHANG) == t1 && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK(zwait(t1, &st, WNOHANG) == 0);
    CHECK(write(gate[1], "x\n", 2) == 2);
    close(gate[1]);
    CHECK(zwait(t1, &st, 0) == t1 && WIFEXITED(st) && WEXITSTATUS(st) == 9);
    CHECK(zreap_all(on_exit_cb, NULL) == 0);
    CHECK_ERR(zwait(t1, &st, WNOHANG), ECHILD);
    CHECK(ctest_zombies() == 0);
}

static void fallback_foreign(void) {
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK(zreap_fd() >= 0);
    sigset_t chld, old_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, &old_mask) == 0);

    /* Fill the fd table: the next child gets no pidfd. */
    struct rlimit lim = {64, 64};
    CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
    while (open("/dev/null", O_RDONLY | O_CLOEXEC) != -1) {
    }
    CHECK(errno == EMFILE);

    pid_t t = zfork(NULL);
    if (t == 0) _exit(5);
    int st = -1;
    CHECK(waitpid(t, &st, 0) == t && WEXITSTATUS(st) == 5); /* the foreign waiter */
    ctest_sleep_ms(30); /* start times are in clock ticks: let one pass */
    CHECK(ctest_next_pid_is(t) == 0);
    pid_t u = fork();
    if (u == 0) _exit(77);
    CHECK(u == t);
    siginfo_t info;
    CHECK(waitid(P_PID, (id_t)u, &info, WEXITED | WNOWAIT) == 0);
    CHECK(sigprocmask(SIG_SETMASK, &old_mask, NULL) == 0); /* the handler runs now */
    CHECK(zreap_all(NULL, NULL) == 0);
    CHECK_ERR(zwait(t, &st, WNOHANG), ECHILD);
    CHECK(waitpid(u, &st, 0) == u && WIFEXITED(st) && WEXITSTATUS(st) == 77);
}

static void run(const char *name, void (*scenario)(int), int arg) {
    pid_t pid = fork();
    if (pid == 0) {
        /* The library's keeper thread takes a pid too: start it (the first
         * tracked child does) before the scenario steers the next pid. Not
         * with zreap_fd(): with the fd in use, ZREAP_OWN leaves tracked exits
         * to zreap_all(), and reused-tracked needs the library to reap T1. */
        pid_t first = zfork(NULL);
        if (first == 0) _exit(0);
        int first_st;
        CHECK(zwait(first, &first_st, 0) == first);
        scenario(arg);
        _exit(ctest_failures ? 1 : 0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "scenario %s(%d) failed (status %#x)\n", name, arg, st);
        ctest_failures++;
    }
}

static void stale_untracked_s(int use_spawn) { stale_untracked(use_spawn); }
static void reused_tracked_s(int flags) { reused_tracked((unsigned)flags); }
static void fallback_foreign_s(int unused) {
    (void)unused;
    fallback_foreign();
}

int main(void) {
    ctest_leave_ns_init();
    ctest_start();
    if (ctest_pid_control_open() == -1) {
        fprintf(stderr, "cannot steer pids (run under unshare -Urfp --mount-proc): %s\n", strerror(errno));
        return 1;
    }
    run("stale-untracked/zfork", stale_untracked_s, 0);
    run("stale-untracked/zspawn", stale_untracked_s, 1);
    run("reused-tracked/all", reused_tracked_s, 0);
    run("reused-tracked/own", reused_tracked_s, ZREAP_OWN);
    run("fallback-foreign", fallback_foreign_s, 0);
    return ctest_finish("reaper_pid_reuse");
}
