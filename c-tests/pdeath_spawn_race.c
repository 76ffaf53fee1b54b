/* Proves: zspawn()'s pdeathsig "holds even if the parent dies between fork
 * and exec". P spawns sleep 100 (pdeathsig SIGKILL) in a tight loop; T kills
 * P with SIGKILL at varying moments, so P often dies in the middle of a
 * zspawn(). Afterwards every process P left behind — children that had
 * exec'd, children still between fork and exec, any helper — must end, and
 * nothing may stay alive; the first child (known to run sleep) must end by
 * SIGKILL. 30 rounds.
 * T (this test) is a subreaper: everything P leaves is reparented here. */
#include "ctest_tree.h"

/* Returns 1 if the round passed. */
static int one_round(int round) {
    int pidp[2];
    if (pipe2(pidp, O_CLOEXEC) != 0) return 0;
    pid_t p = fork();
    if (p < 0) return 0;
    if (p == 0) {
        close(pidp[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* if T dies, do not spawn forever */
        zspawn_options o;
        zspawn_options_init(&o);
        o.pdeathsig = SIGKILL;
        char *const argv[] = {"sleep", "100", NULL};
        for (int i = 0; i < 2000; i++) {
            pid_t c = zspawn("/bin/sleep", argv, NULL, &o);
            if (i == 0 && write(pidp[1], &c, sizeof c) != (ssize_t)sizeof c) _exit(3);
            if (c < 0) _exit(4);
        }
        for (;;) pause();
    }
    close(pidp[1]);
    int ok = 1;
    pid_t first = -1;
    if (read_full(pidp[0], &first, sizeof first, 10000) != 0 || first <= 0) {
        fprintf(stderr, "round %d: P's first zspawn failed\n", round);
        ok = 0;
    }
    close(pidp[0]);
    /* P is now spawning; kill it after 0..2.9 ms. */
    long us = (round * 997L) % 3000;
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
    kill(p, SIGKILL);
    int st = -1;
    if (wait_exit(p, &st, 10000) != 1) {
        fprintf(stderr, "round %d: P did not die\n", round);
        ok = 0;
    }

    /* Everything P left behind is ours now and must end by itself, by SIGKILL. */
    int reaped = 0, bad = 0;
    for (long ms = 0; ms < 5000; ms += 5) {
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            reaped++;
            if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
                char d[128];
                describe_status(d, sizeof d, st);
                /* The first child had exec'd sleep: it can only end by its
                 * pdeathsig. Others may have been mid-spawn (or a helper of the
                 * library): ending at all is what counts; note how. */
                fprintf(stderr, "round %d: %s %d left by P %s%s\n", round,
                        w == first ? "the exec'd child" : "process", (int)w, d,
                        w == first ? ", want SIGKILL" : " (note only)");
                if (w == first) bad++;
            }
        }
        if (ctest_children() == 0) break;
        ctest_sleep_ms(5);
    }
    if (bad) ok = 0;
    if (reaped == 0) {
        fprintf(stderr, "round %d: nothing left by P was reaped (want at least the first child)\n", round);
        ok = 0;
    }
    if (kill_leftovers() != 0) {
        fprintf(stderr, "round %d: processes left by P stayed alive 5 s after P died\n", round);
        ok = 0;
    }
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
    int round, passed = 0;
    for (round = 0; round < 30; round++) {
        if (!one_round(round)) break;
        passed++;
    }
    if (passed != 30) fprintf(stderr, "failed in round %d of 30\n", round);
    CHECK(passed == 30);
    CHECK(kill_leftovers() == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("pdeath_spawn_race");
}
