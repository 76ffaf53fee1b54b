/* SIGCHLD blocked in every thread before zreap_install(0): the handler could
 * never run, so the library's watcher thread reaps in its place. Children
 * must not stay zombies, zreap_fd() must turn readable, and each exit is
 * delivered once, with its status. Also with a second thread (blocked too).
 * First, in a process of its own, the same before zreap_install(ZREAP_OWN)
 * beside a plain child's zombie, which is not the library's to reap: the
 * zfork() children must still be reaped as they exit. */
#include "ctest.h"

#include <poll.h>
#include <pthread.h>

static void *idle(void *arg) {
    (void)arg;
    pause();
    return NULL;
}

static int seen, right;
static pid_t expected;
static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    seen++;
    right += pid == expected && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 3;
}

/* SIGCHLD is blocked (inherited), and this process has one thread. */
static void own_scope_beside_a_plain_zombie(void) {
    CHECK(zreap_install(ZREAP_OWN) == 0);
    pid_t plain = fork();
    if (plain == 0) _exit(5);
    WAIT_UNTIL(ctest_is_zombie(plain), 10000);
    CHECK(ctest_is_zombie(plain));
    char state;
    pid_t ppid;
    for (int round = 0; round < 20; round++) {
        pid_t kid = zfork(NULL);
        if (kid == 0) _exit(3);
        WAIT_UNTIL(ctest_proc_stat(kid, &state, &ppid) == -1, 10000);
        CHECK(ctest_proc_stat(kid, &state, &ppid) == -1); /* reaped, no zombie */
        int st = -1;
        CHECK(zwait(kid, &st, WNOHANG) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 3);
    }
    CHECK(ctest_is_zombie(plain)); /* left alone */
    int st = -1;
    CHECK(waitpid(plain, &st, 0) == plain && WIFEXITED(st) && WEXITSTATUS(st) == 5);
}

int main(void) {
    ctest_start();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
    pid_t own = fork();
    if (own == 0) {
        ctest_failures = 0; /* its own */
        own_scope_beside_a_plain_zombie();
        _exit(ctest_failures ? 1 : 0);
    }
    int st = -1;
    CHECK(own > 0 && waitpid(own, &st, 0) == own);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    pthread_t other;
    CHECK(pthread_create(&other, NULL, idle, NULL) == 0);

    CHECK(zreap_install(0) == 0);
    for (int round = 0; round < 20; round++) {
        expected = fork();
        if (expected == 0) _exit(3);
        char state;
        pid_t ppid;
        WAIT_UNTIL(ctest_proc_stat(expected, &state, &ppid) == -1, 10000);
        CHECK(ctest_proc_stat(expected, &state, &ppid) == -1); /* reaped, no zombie */
        struct pollfd pfd = {.fd = zreap_fd(), .events = POLLIN};
        CHECK(poll(&pfd, 1, 10000) == 1);
        CHECK(zreap_all(on_exit_cb, NULL) == 1);
    }
    CHECK(seen == 20 && right == 20);
    CHECK(ctest_zombies() == 0);

    return ctest_finish("reaper_sigchld_blocked");
}
