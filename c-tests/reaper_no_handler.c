/* Proves ZREAP_NO_HANDLER and zreap_fd():
 * - zreap_fd() is the same fd on every call, O_NONBLOCK and FD_CLOEXEC;
 * - with ZREAP_NO_HANDLER the SIGCHLD disposition stays SIG_DFL, yet zreap_fd()
 *   becomes readable when a plain fork() child exits, and when a zspawn() child does;
 * - it is not readable while the only child is alive, nor after zreap_all() drained it;
 * - zreap_all() reports those exits with pid and status;
 * - ZREAP_OWN|ZREAP_NO_HANDLER: a poll() loop collects 10 zspawn() children, while a
 *   plain fork() child is neither reported nor reaped. */
#include "ctest.h"

#include <poll.h>

static pid_t last_pid;
static int last_status, calls;
static void record(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    last_pid = pid;
    last_status = wstatus;
    calls++;
}

#define NOWN 10
static pid_t own[NOWN];
static int own_seen[NOWN], own_bad;
static void record_own(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    for (int i = 0; i < NOWN; i++) {
        if (own[i] != pid) continue;
        own_seen[i]++;
        if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 20 + i) own_bad++;
        return;
    }
    own_bad++;
}

static struct sigaction current(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigaction(SIGCHLD, NULL, &sa);
    return sa;
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    CHECK(current().sa_handler == SIG_DFL);
    CHECK(!(current().sa_flags & SA_SIGINFO));

    int fd = zreap_fd();
    CHECK(fd >= 0);
    int nfds = ctest_open_fds();
    CHECK(zreap_fd() == fd);
    CHECK(zreap_fd() == fd);
    CHECK(ctest_open_fds() == nfds);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK(!ctest_readable(fd, 0));

    /* A plain fork() child. */
    pid_t pid = fork();
    if (pid == 0) _exit(17);
    CHECK(pid > 0);
    CHECK(ctest_readable(fd, 10000));
    CHECK(ctest_zombies() == 1); /* nothing reaped it: that is zreap_all()'s job */
    CHECK(zreap_all(record, NULL) == 1);
    CHECK(calls == 1 && last_pid == pid);
    CHECK(WIFEXITED(last_status) && WEXITSTATUS(last_status) == 17);
    CHECK(!ctest_readable(fd, 0));
    CHECK(ctest_zombies() == 0);
    CHECK(current().sa_handler == SIG_DFL);

    /* A live zspawn() child: not readable until it dies. */
    char *sleep_argv[] = {"sleep", "30", NULL};
    pid = zspawn("/bin/sleep", sleep_argv, NULL, NULL);
    CHECK(pid > 0);
    ctest_sleep_ms(100);
    CHECK(!ctest_readable(fd, 0));
    CHECK(zreap_all(record, NULL) == 0);
    CHECK(kill(pid, SIGTERM) == 0);
    CHECK(ctest_readable(fd, 10000));
    calls = 0;
    CHECK(zreap_all(record, NULL) == 1);
    CHECK(calls == 1 && last_pid == pid);
    CHECK(WIFSIGNALED(last_status) && WTERMSIG(last_status) == SIGTERM);
    CHECK(!ctest_readable(fd, 0));
    CHECK(zreap_all(record, NULL) == 0);
    CHECK(ctest_children() == 0);
    CHECK(current().sa_handler == SIG_DFL);

    /* ZREAP_OWN | ZREAP_NO_HANDLER: a poll loop. */
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER) == 0);
    CHECK(current().sa_handler == SIG_DFL);
    CHECK(zreap_fd() == fd);

    pid_t plain = fork();
    if (plain == 0) _exit(33);
    CHECK(plain > 0);
    for (int i = 0; i < NOWN; i++) {
        char script[64];
        snprintf(script, sizeof script, "sleep 0.0%d; exit %d", i, 20 + i);
        char *argv[] = {"sh", "-c", script, NULL};
        own[i] = zspawn("/bin/sh", argv, NULL, NULL);
        CHECK(own[i] > 0);
    }
    int total = 0;
    for (int rounds = 0; total < NOWN && rounds < 2000; rounds++) {
        if (!ctest_readable(fd, 10)) continue;
        int n = zreap_all(record_own, NULL);
        CHECK(n >= 0);
        if (n > 0) total += n;
    }
    CHECK(total == NOWN);
    for (int i = 0; i < NOWN; i++) CHECK(own_seen[i] == 1);
    CHECK(own_bad == 0);
    CHECK(!ctest_readable(fd, 0));

    /* The plain child was left alone. */
    WAIT_UNTIL(ctest_zombies() == 1, 10000);
    CHECK(ctest_zombies() == 1);
    CHECK(zreap_all(record_own, NULL) == 0);
    CHECK(ctest_zombies() == 1);
    int st = -1;
    CHECK(waitpid(plain, &st, 0) == plain);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 33);
    CHECK(ctest_children() == 0);

    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reported == 2 + NOWN);
    CHECK(s.tracked == 0);
    CHECK(zreap_uninstall() == 0);
    CHECK(current().sa_handler == SIG_DFL);
    return ctest_finish("reaper_no_handler");
}
