/* Proves that zreap_install(0) reaps a storm of 200 plain fork() children that all
 * exit at the same moment (SIGCHLD does not queue: the handler must loop), leaving
 * no zombie, and that zreap_all() then reports each of the 200 exits exactly once
 * with the right pid and exit code; a second zreap_all() reports nothing, and the
 * stats agree. zreap_fd() is readable before zreap_all() and drained after it. */
#include "ctest.h"

#include <poll.h>

#define N 200

static pid_t pids[N];
static int seen[N];
static int reported, unknown, duplicates, bad_status;

static int code_of(int i) { return (i * 37 + 5) % 256; }

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    CHECK(ctx == (void *)&reported);
    reported++;
    for (int i = 0; i < N; i++) {
        if (pids[i] != pid) continue;
        if (seen[i]++) duplicates++;
        if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != code_of(i)) bad_status++;
        return;
    }
    unknown++;
}

static int readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, timeout_ms)) == -1 && errno == EINTR) {
    }
    return r == 1 && (p.revents & POLLIN);
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

    int gate[2];
    CHECK(pipe(gate) == 0);
    for (int i = 0; i < N; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) == -1 && errno == EINTR) {
            }
            _exit(code_of(i));
        }
        CHECK(pid > 0);
        pids[i] = pid;
    }
    ctest_sleep_ms(100);
    CHECK(ctest_children() == N); /* all alive, blocked on the pipe */
    close(gate[0]);
    close(gate[1]); /* EOF: everyone exits at once */

    WAIT_UNTIL(ctest_children() == 0, 30000);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(readable(fd, 10000));

    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reaped >= N);
    CHECK(s.reported == 0);
    CHECK(s.dropped == 0);
    CHECK(s.tracked == 0);

    int n = zreap_all(on_exit_cb, &reported);
    CHECK(n == N);
    CHECK(reported == N);
    CHECK(unknown == 0);
    CHECK(duplicates == 0);
    CHECK(bad_status == 0);
    for (int i = 0; i < N; i++) CHECK(seen[i] == 1);
    CHECK(!readable(fd, 0));

    CHECK(zreap_all(on_exit_cb, &reported) == 0);
    CHECK(reported == N);
    CHECK(zreap_all(NULL, NULL) == 0);
    int st;
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);
    CHECK_ERR(zwait(pids[0], &st, 0), ECHILD);

    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reaped >= N);
    CHECK(s.reported == N);
    CHECK(s.dropped == 0);
    CHECK(s.tracked == 0);

    CHECK(ctest_open_fds() == fds_before); /* no fd leaked per child */
    CHECK(zreap_uninstall() == 0);
    return ctest_finish("reaper_storm");
}
