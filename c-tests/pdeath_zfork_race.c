/* Proves: zfork() arms pdeathsig with no window — when P exits right after
 * zfork() returns (no sleep: one write, then _exit), the child C (which only
 * pause()s) is always killed by SIGKILL, even if P was gone before C got to
 * run at all. Repeated 50 times to exercise the fork/prctl race.
 * T (this test) is a subreaper: C is reparented here and reaped here. */
#include "ctest.h"

#include <poll.h>

/* ---- helpers shared (by copy) by the pdeath_* tests ---- */

/* Reads exactly len bytes, waiting at most ms for each chunk. 0 on success. */
static int read_full(int fd, void *buf, size_t len, int ms) {
    size_t n = 0;
    while (n < len) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = read(fd, (char *)buf + n, len - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        n += (size_t)k;
    }
    return 0;
}

/* Waits up to ms for the child pid to end: 1 with *st set, 0 on timeout,
 * -1 if pid is not (or no longer) our child. */
static int wait_exit(pid_t pid, int *st, long ms) {
    for (long t = 0;; t += 5) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno != EINTR) return -1;
        if (t >= ms) return 0;
        ctest_sleep_ms(5);
    }
}

static void describe_status(char *out, size_t cap, int st) {
    if (WIFSIGNALED(st))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st))
        snprintf(out, cap, "exited with %d", WEXITSTATUS(st));
    else
        snprintf(out, cap, "status 0x%x", st);
}

/* Kills every process still parented to us (we are a subreaper, so orphans of
 * our descendants land here too, perhaps a little later) and reaps them all.
 * Returns how many live processes it had to kill: 0 when nothing was left. */
static int kill_leftovers(void) {
    int killed = 0;
    pid_t done[512];
    for (int round = 0; round < 300; round++) {
        int seen = 0;
        DIR *d = opendir("/proc");
        if (!d) break;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!isdigit((unsigned char)e->d_name[0])) continue;
            pid_t pid = (pid_t)atoi(e->d_name);
            char state;
            pid_t ppid;
            if (ctest_proc_stat(pid, &state, &ppid) != 0 || ppid != getpid()) continue;
            seen++;
            if (state == 'Z') continue;
            kill(pid, SIGKILL);
            int known = 0;
            for (int i = 0; i < killed && i < 512; i++) known |= done[i] == pid;
            if (!known) {
                fprintf(stderr, "leftover process %d (state %c) killed\n", (int)pid, state);
                if (killed < 512) done[killed] = pid;
                killed++;
            }
        }
        closedir(d);
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (seen == 0) break;
        ctest_sleep_ms(10);
    }
    return killed;
}
/* ---- end of helpers ---- */

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
