/* Proves: a child zspawn()ed with a pdeathsig from the main thread of P
 * gets that signal when P exits normally (_exit, no destructor help) — for
 * SIGKILL and for SIGTERM, so the number delivered is the one asked for —
 * and not before: it runs the real program while P is alive.
 * Layout: this test T is a subreaper; T forks P; P zspawns C = sleep 100 and
 * sends C's pid to T; T tells P to exit; C is reparented to T, which reaps it
 * and checks how it ended. */
#include "ctest_tree.h"

static void one_round(int sig) {
    int pidp[2], gop[2];
    CHECK(pipe2(pidp, O_CLOEXEC) == 0 && pipe2(gop, O_CLOEXEC) == 0);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        close(pidp[0]);
        close(gop[1]);
        zspawn_options o;
        zspawn_options_init(&o);
        o.pdeathsig = sig;
        char *const argv[] = {"sleep", "100", NULL};
        pid_t c = zspawn("/bin/sleep", argv, NULL, &o);
        int msg[2] = {(int)c, errno};
        if (write(pidp[1], msg, sizeof msg) != (ssize_t)sizeof msg) _exit(3);
        char b;
        if (read(gop[0], &b, 1) < 0) _exit(4); /* T's go, or EOF if T died */
        _exit(0);
    }
    close(pidp[1]);
    close(gop[0]);
    int msg[2] = {-1, 0};
    CHECK(read_full(pidp[0], msg, sizeof msg, 10000) == 0);
    pid_t c = msg[0];
    if (c <= 0) fprintf(stderr, "zspawn in P failed: %s\n", strerror(msg[1]));
    CHECK(c > 0);

    if (c > 0) {
        /* While P lives, C runs sleep as P's child. */
        char state = '?';
        pid_t ppid = -1;
        CHECK(ctest_proc_stat(c, &state, &ppid) == 0);
        CHECK(ppid == p);
        CHECK(state != 'Z');
        ctest_sleep_ms(100);
        CHECK(kill(c, 0) == 0);
        CHECK(ctest_proc_stat(c, &state, &ppid) == 0 && state != 'Z');
    }

    /* P exits. */
    CHECK(write(gop[1], "x", 1) == 1);
    close(gop[1]);
    int st = -1;
    CHECK(wait_exit(p, &st, 10000) == 1);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    if (c > 0) {
        /* C is now ours (P is reaped, so the reparenting is done). */
        st = -1;
        int r = wait_exit(c, &st, 10000);
        if (r != 1) fprintf(stderr, "pdeathsig %d: C still running 10 s after P exited\n", sig);
        CHECK(r == 1);
        if (r == 1 && !(WIFSIGNALED(st) && WTERMSIG(st) == sig)) {
            char d[128];
            describe_status(d, sizeof d, st);
            fprintf(stderr, "pdeathsig %d: C %s\n", sig, d);
        }
        CHECK(r == 1 && WIFSIGNALED(st) && WTERMSIG(st) == sig);
    }
    close(pidp[0]);
    CHECK(kill_leftovers() == 0);
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    one_round(SIGKILL);
    one_round(SIGTERM);
    CHECK(kill_leftovers() == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("pdeath_spawn_exit");
}
