/* Proves: zfork() arms pdeathsig with no window — when P exits right after
 * zfork() returns (no sleep: one write, then _exit), the child C (which only
 * pause()s) is always killed by SIGKILL, even if P was gone before C got to
 * run at all. Repeated 50 times to exercise the fork/prctl race.
 * T (this test) is a subreaper: C is reparented here and reaped here. */
#include "ctest_tree.h"

/* Returns 1 if the round passed. */
static int one_round(int round) {
    int pidp[2];
    if (pipe2(pidp, O_CLOEXEC) != 0) {
        CHECK(0);
        return 0;
    }
    pid_t p = fork();
    CHECK(p >= 0);
    if (p < 0) return 0;
    if (p == 0) {
        close(pidp[0]);
        zspawn_options o;
        zspawn_options_init(&o);
        o.pdeathsig = SIGKILL;
        pid_t c = zfork(&o);
        if (c == 0) {
            close(pidp[1]);
            for (;;) pause();
        }
        int msg[2] = {(int)c, errno};
        ssize_t w = write(pidp[1], msg, sizeof msg);
        _exit(w == (ssize_t)sizeof msg ? 0 : 3);
    }
    close(pidp[1]);
    int ok = 1;
    int st = -1;
    /* P first: once it is reaped, C has been reparented to us. */
    if (wait_exit(p, &st, 10000) != 1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "round %d: P did not exit cleanly (status 0x%x)\n", round, st);
        ok = 0;
    }
    int msg[2] = {-1, 0};
    if (read_full(pidp[0], msg, sizeof msg, 10000) != 0 || msg[0] <= 0) {
        fprintf(stderr, "round %d: zfork in P failed: %s\n", round, strerror(msg[1]));
        ok = 0;
    }
    close(pidp[0]);
    pid_t c = msg[0];
    if (c > 0) {
        st = -1;
        int r = wait_exit(c, &st, 5000);
        if (r == 0) fprintf(stderr, "round %d: C still alive 5 s after P exited\n", round);
        if (r == -1) fprintf(stderr, "round %d: C is not our child\n", round);
        if (r == 1 && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            char d[128];
            describe_status(d, sizeof d, st);
            fprintf(stderr, "round %d: C %s, want SIGKILL\n", round, d);
        }
        if (!(r == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) ok = 0;
    }
    if (kill_leftovers() != 0) ok = 0;
    return ok;
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    int passed = 0, round;
    for (round = 0; round < 50; round++) {
        if (!one_round(round)) break; /* one failure is enough; do not wait 50 times */
        passed++;
    }
    if (passed != 50) fprintf(stderr, "failed in round %d of 50\n", round);
    CHECK(passed == 50);
    CHECK(kill_leftovers() == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("pdeath_zfork_race");
}
