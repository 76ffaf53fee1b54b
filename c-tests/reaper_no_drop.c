/* zreap_all() itself drops nothing; zreap_stats.dropped stays 0 throughout.
 * 1. A buffer nearly full already: FILL exits that the handler of zreap_install(0)
 *    recorded and nobody collected; then the handler goes (zreap_uninstall) and
 *    ZREAP_NO_HANDLER comes. N more children exit before anyone reaps, and one
 *    zreap_all() reports all FILL + N exits, more than the buffer holds (its walk
 *    stops at a full buffer, hands the batch over and walks on), each child's
 *    status with it.
 * 2. N children that exited before anyone reaped all come back from one
 *    zreap_all() call.
 * (Drops happen only when a SIGCHLD handler reaps faster than the program
 * collects; reaper_dropped.c covers that.) */
#include "ctest.h"

#define N 5000
#define FILL (ZREAP_UNTRACKED_CAPACITY - N / 2)
#define FILL_STATUS 201

static int seen[N], fill_seen, wrong;
static pid_t pids[N];
static int *index_of; /* by pid: 1 + the index in pids[] of the zombie now */
static long pid_limit;

static void on_exit_cb(pid_t pid, int status, void *ctx) {
    (void)ctx;
    if (WIFEXITED(status) && WEXITSTATUS(status) == FILL_STATUS) {
        fill_seen++;
        return;
    }
    int i = pid > 0 && pid < pid_limit ? index_of[pid] - 1 : -1;
    if (i < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != i % 200) {
        wrong++;
        return;
    }
    seen[i]++;
}

/* N children that have exited and wait as zombies. */
static void make_zombies(void) {
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) _exit(i % 200);
        CHECK(pids[i] > 0);
        if (pids[i] > 0 && pids[i] < pid_limit) index_of[pids[i]] = i + 1;
    }
    WAIT_UNTIL(ctest_zombies() == N, 60000);
    CHECK(ctest_zombies() == N);
}

static int once(void) {
    int n = 0;
    for (int i = 0; i < N; i++) n += seen[i] == 1;
    return n;
}

int main(void) {
    ctest_start();
    pid_limit = ctest_pid_limit();
    index_of = calloc((size_t)pid_limit, sizeof *index_of);
    CHECK(index_of != NULL);
    if (!index_of) return ctest_finish("reaper_no_drop");
    zreap_stats s;

    /* 1. */
    CHECK(zreap_install(0) == 0);
    for (int made = 0; made < FILL;) {
        pid_t pid = fork();
        if (pid == 0) _exit(FILL_STATUS);
        if (pid < 0) {
            CHECK(errno == EAGAIN);
            ctest_sleep_ms(10);
            continue;
        }
        made++;
    }
    WAIT_UNTIL(zreap_stats_get(&s) == 0 && s.reaped == FILL, 60000);
    CHECK(zreap_stats_get(&s) == 0 && s.reaped == FILL && s.dropped == 0);
    CHECK(ctest_children() == 0);
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    make_zombies();
    CHECK(FILL + N > ZREAP_UNTRACKED_CAPACITY);
    CHECK(zreap_all(on_exit_cb, NULL) == FILL + N);
    CHECK(fill_seen == FILL);
    CHECK(once() == N);
    CHECK(wrong == 0);
    CHECK(ctest_zombies() == 0);

    /* 2. */
    make_zombies();
    CHECK(zreap_all(on_exit_cb, NULL) == N);
    CHECK(once() == N);
    CHECK(wrong == 0);
    CHECK(zreap_stats_get(&s) == 0 && s.dropped == 0 && s.reported == FILL + 2 * N);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_no_drop");
}
