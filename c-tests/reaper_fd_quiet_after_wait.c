/* zreap_fd() is not left readable by an exit that a zwait() took: in every
 * scope where the fd is in use, a tracked child taken by a blocking
 * zwait(pid) (which reaps it itself), by zwait(pid, WNOHANG) once it has
 * ended, or by zwait(-1), leaves the fd not readable once zreap_all() has
 * nothing to report, so a poll() loop sleeps instead of spinning.
 * The fd once stayed readable after each such wait until the library's
 * keeper thread next woke, which in these scopes it had no reason to do:
 * after 20 of 30 waits (every zwait(pid)) in each scope but
 * zreap_install(0)'s, where the keeper reaps and the fd has no such
 * registration. */
#include "ctest.h"
#include <poll.h>

#define ROUNDS 10

static int fd_readable(void) {
    struct pollfd pfd = {zreap_fd(), POLLIN, 0};
    return poll(&pfd, 1, 0) == 1;
}

/* A zfork() child that exits with `code` after `ms` milliseconds. */
static pid_t child(int code, int ms) {
    pid_t pid = zfork(NULL);
    if (pid == 0) {
        ctest_sleep_ms(ms);
        _exit(code);
    }
    CHECK(pid > 0);
    return pid;
}

/* A zombie, or already reaped by the library (where a handler runs). */
static int ended(pid_t pid) {
    char state = 0;
    pid_t ppid;
    return ctest_proc_stat(pid, &state, &ppid) != 0 || state == 'Z';
}

/* After a wait took the last exit: nothing to report, the fd quiet. */
static int quiet(void) {
    int reported = zreap_all(NULL, NULL);
    CHECK(reported == 0);
    return reported == 0 && !fd_readable();
}

static void scope(const char *name, unsigned flags, int installed) {
    if (installed) CHECK(zreap_install(flags) == 0);
    CHECK(zreap_fd() >= 0);
    int loud = 0, st;
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid = child(3, 20);
        CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 3);
        loud += !quiet();

        pid = child(4, 0);
        WAIT_UNTIL(ended(pid), 5000);
        CHECK(zwait(pid, &st, WNOHANG) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 4);
        loud += !quiet();

        pid = child(5, 20);
        CHECK(zwait(-1, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 5);
        loud += !quiet();
    }
    fprintf(stderr, "%s: the fd stayed readable after %d of %d waits\n", name, loud, 3 * ROUNDS);
    CHECK(loud == 0);
    CHECK(ctest_zombies() == 0);
    if (installed) CHECK(zreap_uninstall() == 0);
}

int main(void) {
    ctest_start();
    scope("ZREAP_OWN", ZREAP_OWN, 1);
    scope("ZREAP_OWN | ZREAP_NO_HANDLER", ZREAP_OWN | ZREAP_NO_HANDLER, 1);
    scope("ZREAP_NO_HANDLER", ZREAP_NO_HANDLER, 1);
    scope("zreap_install(0)", 0, 1);
    scope("nothing installed", 0, 0);
    return ctest_finish("reaper_fd_quiet_after_wait");
}
