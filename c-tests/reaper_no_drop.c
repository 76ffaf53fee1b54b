/* zreap_all() itself drops nothing: with ZREAP_NO_HANDLER, 5000 children
 * that exited before anyone reaped (more than the 4096-exit buffer) all come
 * back from one zreap_all() call, and zreap_stats.dropped stays 0. (Drops
 * happen only when a SIGCHLD handler reaps faster than the program collects;
 * reaper_dropped.c covers that.) */
#include "ctest.h"

#define N 5000

static int seen[N];
static pid_t pids[N];

static void on_exit_cb(pid_t pid, int status, void *ctx) {
    (void)ctx;
    for (int i = 0; i < N; i++)
        if (pids[i] == pid) {
            seen[i]++;
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == i % 200);
        }
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) _exit(i % 200);
        CHECK(pids[i] > 0);
    }
    WAIT_UNTIL(ctest_zombies() == N, 60000);
    CHECK(ctest_zombies() == N);
    CHECK(zreap_all(on_exit_cb, NULL) == N);
    int once = 0;
    for (int i = 0; i < N; i++) once += seen[i] == 1;
    CHECK(once == N);
    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0 && s.dropped == 0 && s.reported == N);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_no_drop");
}
