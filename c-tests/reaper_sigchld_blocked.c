/* SIGCHLD blocked in every thread before zreap_install(0): the handler could
 * never run, so the library's watcher thread reaps in its place. Children
 * must not stay zombies, zreap_fd() must turn readable, and each exit is
 * delivered once, with its status. Also with a second thread (blocked too). */
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

int main(void) {
    ctest_start();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
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
