/* Proves the pidfd fallback: with RLIMIT_NOFILE lowered so that (almost) no new fd
 * can be opened, the library cannot hold a pidfd per child, yet zspawn() still
 * starts children under ZREAP_OWN, all of them are reaped and their exits are
 * delivered once with the right status through zwait() and zreap_all().
 * The lowest limit at which zspawn() works is found by trial, starting at "no free
 * fd at all" (the result is printed); 20 shells (`read x; exit N`, gated on a pipe
 * so that all 20 are alive at the same time) are spawned at that limit, and their
 * exits collected while it is still in force. The limit is restored at the end. */
#include "ctest.h"

#include <sys/resource.h>

#define N 20

static pid_t pids[N];
static int seen[N], bad, foreign;

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    for (int i = 0; i < N; i++) {
        if (pids[i] != pid) continue;
        seen[i]++;
        if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 10 + i) bad++;
        return;
    }
    foreign++;
}

/* The soft limit below which exactly `k` fd numbers are free (fds are handed out
 * lowest first; open fds at or above the limit stay usable but block nothing). */
static int limit_with_free(int k) {
    int fd = 0;
    for (;; fd++) {
        if (fcntl(fd, F_GETFD) != -1) continue; /* open */
        if (k-- == 0) return fd;
    }
}

int main(void) {
    ctest_start();
    int st;
    char *true_argv[] = {"true", NULL};
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK(zreap_fd() >= 0);
    /* Warm up: whatever the library sets up once is in place before the limit. */
    pid_t pid = zspawn("/bin/true", true_argv, NULL, NULL);
    CHECK(pid > 0 && zwait(pid, &st, 0) == pid);

    int gate[2];
    CHECK(pipe2(gate, O_CLOEXEC) == 0);

    struct rlimit old;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    int open_fds = ctest_open_fds();
    CHECK(open_fds >= 3);

    /* Find the lowest soft limit at which zspawn() works: no free fd at all,
     * then one, two... */
    printf("trying zspawn() + zwait() with 0..4 free fds\n");
    int extra = -1, limit = -1;
    for (int k = 0; k <= 4 && extra < 0; k++) {
        struct rlimit lim = old;
        limit = limit_with_free(k);
        lim.rlim_cur = (rlim_t)limit;
        CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
        errno = 0;
        pid = zspawn("/bin/true", true_argv, NULL, NULL);
        if (pid > 0) {
            extra = k;
            CHECK(zwait(pid, &st, 0) == pid);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        } else {
            printf("zspawn with %d free fd(s) failed: %s\n", k, strerror(errno));
        }
    }
    CHECK(extra >= 0);
    printf("zspawn works with %d free fd(s) (%d open, soft limit %d)\n", extra, open_fds, limit);

    if (extra >= 0) {
        zspawn_options opts;
        zspawn_options_init(&opts);
        opts.stdin_fd = gate[0];
        for (int i = 0; i < N; i++) {
            char script[32];
            snprintf(script, sizeof script, "read x; exit %d", 10 + i);
            char *argv[] = {"sh", "-c", script, NULL};
            pids[i] = zspawn("/bin/sh", argv, NULL, &opts);
            if (pids[i] <= 0)
                fprintf(stderr, "zspawn #%d at the low limit: %s\n", i, strerror(errno));
        }
        int started = 0;
        for (int i = 0; i < N; i++) started += pids[i] > 0;
        CHECK(started == N);
        ctest_sleep_ms(100);
        for (int i = 0; i < N; i++)
            if (pids[i] > 0) CHECK(zwait(pids[i], &st, WNOHANG) == 0); /* all alive */
        close(gate[1]); /* EOF on their stdin: all exit */
        gate[1] = -1;

        /* Half through zwait() (blocking), the rest through zreap_all(), still at
         * the low limit. (Progress lines: if the deadline kills us, they tell where.) */
        printf("blocking zwait() on %d children\n", N / 2);
        for (int i = 0; i < N / 2; i++) {
            if (pids[i] <= 0) continue;
            st = -1;
            CHECK(zwait(pids[i], &st, 0) == pids[i]);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 10 + i);
            seen[i]++;
        }
        printf("zreap_all() for the rest\n");
        int total = 0, want = 0;
        for (int i = N / 2; i < N; i++) want += pids[i] > 0;
        for (int round = 0; round < 2000 && total < want; round++) {
            int n = zreap_all(on_exit_cb, NULL);
            CHECK(n >= 0);
            if (n > 0) total += n;
            else ctest_sleep_ms(5);
        }
        CHECK(total == want);
        CHECK(zreap_all(on_exit_cb, NULL) == 0);
        CHECK(bad == 0 && foreign == 0);
        for (int i = 0; i < N; i++)
            if (pids[i] > 0) CHECK(seen[i] == 1);
    }

    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    close(gate[0]);
    if (gate[1] >= 0) close(gate[1]);
    WAIT_UNTIL(ctest_children() == 0, 10000);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);

    /* Back to normal. */
    pid = zspawn("/bin/true", true_argv, NULL, NULL);
    CHECK(pid > 0 && zwait(pid, &st, 0) == pid);
    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.tracked == 0);
    CHECK(s.dropped == 0);
    CHECK(zreap_uninstall() == 0);
    return ctest_finish("reaper_fallback");
}
