/* Proves that zreap_install(0) reaps storms of plain fork() children, leaving no
 * zombie, and that zreap_all() then reports each exit exactly once with the right
 * pid and exit code; a second zreap_all() reports nothing, and the stats agree.
 * Round 1: 200 children blocked on a pipe all exit when it is closed.
 * Round 2: the same with SIGCHLD blocked until all 200 are zombies, so that one
 * single signal is delivered: the handler must loop until no exited child is left.
 * zreap_fd() is readable before zreap_all() and drained after it; no fd leaks. */
#include "ctest.h"

#include <poll.h>

#define N 200

static pid_t pids[N];
static int seen[N];
static int reported, unknown, duplicates, bad_status;

static int code_of(int round, int i) { return (i * 37 + 5 + round * 11) % 256; }

static int cur_round;
static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    CHECK(ctx == (void *)&reported);
    reported++;
    for (int i = 0; i < N; i++) {
        if (pids[i] != pid) continue;
        if (seen[i]++) duplicates++;
        if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != code_of(cur_round, i)) bad_status++;
        return;
    }
    unknown++;
}

static void storm(int round, int fd) {
    cur_round = round;
    memset(seen, 0, sizeof seen);
    reported = unknown = duplicates = bad_status = 0;
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);

    int gate[2];
    CHECK(pipe(gate) == 0);
    for (int i = 0; i < N; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) == -1 && errno == EINTR) {
            }
            _exit(code_of(round, i));
        }
        CHECK(pid > 0);
        pids[i] = pid;
    }
    ctest_sleep_ms(100);
    CHECK(ctest_children() == N); /* all alive, blocked on the pipe */
    if (round == 2) CHECK(sigprocmask(SIG_BLOCK, &chld, &old) == 0);
    close(gate[0]);
    close(gate[1]); /* EOF: everyone exits at once */

    if (round == 2) {
        /* Nothing can run the handler: all of them become zombies. */
        WAIT_UNTIL(ctest_zombies() == N, 30000);
        CHECK(ctest_zombies() == N);
        CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0); /* one SIGCHLD arrives */
    }
    WAIT_UNTIL(ctest_children() == 0, 30000);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_readable(fd, 10000));

    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reaped == (uint64_t)N * round);
    CHECK(s.reported == (uint64_t)N * (round - 1));
    CHECK(s.dropped == 0);
    CHECK(s.tracked == 0);

    int n = zreap_all(on_exit_cb, &reported);
    CHECK(n == N);
    CHECK(reported == N);
    CHECK(unknown == 0);
    CHECK(duplicates == 0);
    CHECK(bad_status == 0);
    int once = 0;
    for (int i = 0; i < N; i++) once += seen[i] == 1;
    CHECK(once == N);
    CHECK(!ctest_readable(fd, 0));

    CHECK(zreap_all(on_exit_cb, &reported) == 0);
    CHECK(reported == N);
    CHECK(zreap_all(NULL, NULL) == 0);
    int st;
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);
    CHECK_ERR(zwait(pids[0], &st, 0), ECHILD);

    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reaped == (uint64_t)N * round);
    CHECK(s.reported == (uint64_t)N * round);
}

int main(void) {
    ctest_start();

    /* The zombie counter works: a child nobody waits for is seen as a zombie. */
    pid_t z = fork();
    if (z == 0) _exit(0);
    CHECK(z > 0);
    WAIT_UNTIL(ctest_zombies() == 1, 10000);
    CHECK(ctest_zombies() == 1);
    CHECK(waitpid(z, NULL, 0) == z);
    CHECK(ctest_zombies() == 0);

    CHECK(zreap_install(0) == 0);
    int fd = zreap_fd();
    CHECK(fd >= 0);
    int fds_before = ctest_open_fds();

    storm(1, fd);
    if (ctest_failures == 0) storm(2, fd); /* round 1 left things in an unknown state */

    CHECK(ctest_open_fds() == fds_before); /* no fd leaked per child */
    CHECK(zreap_uninstall() == 0);
    return ctest_finish("reaper_storm");
}
