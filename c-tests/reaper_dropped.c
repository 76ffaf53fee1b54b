/* Proves the bound on untracked exits: with zreap_install(0) and nobody calling
 * zreap_all(), 4100 plain fork() children exit and are all reaped (no zombie); the
 * 4096 newest exits stay recorded and the 4 oldest are dropped: stats.dropped == 4
 * and zreap_all() reports exactly 4096, none of them from a later batch missing.
 * A zspawn()ed (tracked) child whose exit is older than all of them is never dropped:
 * zwait() still delivers its status. */
#include "ctest.h"

#define TOTAL 4100
#define BATCH 100
#define KEEP 4096

static unsigned char *mark; /* indexed by pid: 1 forked, 2 reported */
static long pid_limit;
static pid_t order[TOTAL];
static int reported, foreign, twice, bad_status;

static uint64_t reaped(void) {
    zreap_stats s;
    return zreap_stats_get(&s) == 0 ? s.reaped : 0;
}

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    reported++;
    if (pid <= 0 || pid >= pid_limit || mark[pid] == 0) {
        foreign++;
        return;
    }
    if (mark[pid] == 2) twice++;
    mark[pid] = 2;
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) bad_status++;
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    pid_limit = 4194304;
    FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
    if (f) {
        if (fscanf(f, "%ld", &pid_limit) != 1) pid_limit = 4194304;
        fclose(f);
    }
    pid_limit++;
    mark = calloc((size_t)pid_limit, 1);
    CHECK(mark != NULL);
    if (!mark) return ctest_finish("reaper_dropped");

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
            order[forked++] = pid;
            if (pid < pid_limit) mark[pid] = 1;
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
    CHECK(twice == 0);
    CHECK(bad_status == 0);
    /* Only exits of the first batch may be missing. */
    int missing = 0, missing_late = 0;
    for (int i = 0; i < TOTAL; i++) {
        if (order[i] >= pid_limit || mark[order[i]] == 2) continue;
        missing++;
        if (i >= BATCH) missing_late++;
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
