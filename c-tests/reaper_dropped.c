/* Proves the bound on untracked exits: with zreap_install(0) and nobody calling
 * zreap_all(), ZREAP_UNTRACKED_CAPACITY + 4 plain fork() children exit and are all
 * reaped (no zombie); the newest ZREAP_UNTRACKED_CAPACITY exits stay recorded and
 * the 4 oldest are dropped: stats.dropped == 4 and zreap_all() reports exactly the
 * capacity, none of them from a later batch missing. Pids come around during the
 * run (the buffer holds more exits than pid_max is on many machines), so exits are
 * counted per pid. A zspawn()ed (tracked) child whose exit is older than all of
 * them is never dropped: zwait() still delivers its status. */
#include "ctest.h"

#define KEEP ZREAP_UNTRACKED_CAPACITY
#define TOTAL (KEEP + 4)
#define BATCH 100

/* Indexed by pid: exits forked, forked after the first batch, and reported. */
static unsigned short *forked_n, *late_n, *reported_n;
static long pid_limit;
static pid_t order[TOTAL];
static int reported, foreign, bad_status;

static uint64_t reaped(void) {
    zreap_stats s;
    return zreap_stats_get(&s) == 0 ? s.reaped : 0;
}

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    reported++;
    if (pid <= 0 || pid >= pid_limit || reported_n[pid] == forked_n[pid]) {
        foreign++;
        return;
    }
    reported_n[pid]++;
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) bad_status++;
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    pid_limit = ctest_pid_limit();
    forked_n = calloc((size_t)pid_limit, sizeof *forked_n);
    late_n = calloc((size_t)pid_limit, sizeof *late_n);
    reported_n = calloc((size_t)pid_limit, sizeof *reported_n);
    CHECK(forked_n && late_n && reported_n);
    if (!forked_n || !late_n || !reported_n) return ctest_finish("reaper_dropped");

    CHECK(zreap_install(0) == 0);

    /* The tracked child exits first: its exit is the oldest of all. */
    char *argv[] = {"sh", "-c", "exit 9", NULL};
    pid_t tracked = zspawn("/bin/sh", argv, NULL, NULL);
    CHECK(tracked > 0);
    WAIT_UNTIL(reaped() == 1, 10000);
    CHECK(reaped() == 1);

    int forked = 0;
    while (forked < TOTAL) {
        for (int b = 0; b < BATCH && forked < TOTAL; b++) {
            pid_t pid = fork();
            if (pid == 0) _exit(0);
            if (pid < 0) {
                CHECK(errno == EAGAIN);
                ctest_sleep_ms(10);
                continue;
            }
            if (pid < pid_limit) {
                forked_n[pid]++;
                if (forked >= BATCH) late_n[pid]++;
            }
            order[forked++] = pid;
        }
        /* Let the handler catch up, so batches are reaped in order. */
        WAIT_UNTIL(reaped() >= (uint64_t)forked + 1, 20000);
        CHECK(reaped() == (uint64_t)forked + 1);
    }
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_children() == 0);

    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reaped == TOTAL + 1);
    CHECK(s.dropped == TOTAL - KEEP);
    CHECK(s.reported == 0);
    CHECK(s.tracked == 1);

    /* The tracked exit survived the overflow. */
    int st = -1;
    CHECK(zwait(tracked, &st, WNOHANG) == tracked);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9);

    CHECK(zreap_all(on_exit_cb, NULL) == KEEP);
    CHECK(reported == KEEP);
    CHECK(foreign == 0);
    CHECK(bad_status == 0);
    /* Only exits of the first batch may be missing: every pid has at least
       as many exits reported as it had children after the first batch. */
    int missing = 0, missing_late = 0;
    for (int i = 0; i < TOTAL; i++) {
        pid_t pid = order[i];
        if (pid >= pid_limit || forked_n[pid] == 0) continue;
        missing += forked_n[pid] - reported_n[pid];
        if (reported_n[pid] < late_n[pid]) missing_late++;
        forked_n[pid] = 0; /* each pid counted once */
    }
    CHECK(missing == TOTAL - KEEP);
    CHECK(missing_late == 0);

    CHECK(zreap_all(on_exit_cb, NULL) == 0);
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.dropped == TOTAL - KEEP);
    CHECK(s.reported == KEEP + 1);
    CHECK(s.tracked == 0);
    CHECK(zreap_uninstall() == 0);
    return ctest_finish("reaper_dropped");
}
