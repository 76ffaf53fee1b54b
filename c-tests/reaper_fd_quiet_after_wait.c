/* zreap_fd() is not left readable by an exit that a zwait() took: in every
 * scope where the fd is in use, a tracked child taken by a blocking
 * zwait(pid) (which reaps it itself), by zwait(pid, WNOHANG) once it has
 * ended, or by zwait(-1), leaves the fd not readable once zreap_all() has
 * nothing to report, so a poll() loop sleeps instead of spinning.
 * The fd once stayed readable after each such wait until the library's
 * keeper thread next woke, which in these scopes it had no reason to do:
 * after 20 of 30 waits (every zwait(pid)) in each scope but
 * zreap_install(0)'s, where the keeper reaps and the fd has no such
 * registration.
 * The other way round, in the same scopes: a zwait(A, WNOHANG) for a running
 * child, made while another child B has ended unreported, leaves the fd
 * readable for B, and zreap_all() reports B. A zwait(A) once reaped B on the
 * way (it read the fd's events) without telling anyone: the fd stayed
 * quiet with B's exit waiting. */
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

static int b_reported;

static void on_b(pid_t pid, int st, void *ctx) {
    CHECK(pid == *(pid_t *)ctx && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    b_reported++;
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

static void other_exit_stays_announced(const char *name, unsigned flags, int installed) {
    if (installed) CHECK(zreap_install(flags) == 0);
    CHECK(zreap_fd() >= 0);
    pid_t a = zfork(NULL);
    if (a == 0) {
        pause();
        _exit(0);
    }
    CHECK(a > 0);
    pid_t b = child(7, 0);
    WAIT_UNTIL(ended(b), 5000);
    CHECK(zwait(a, NULL, WNOHANG) == 0);
    struct pollfd pfd = {zreap_fd(), POLLIN, 0};
    int readable = poll(&pfd, 1, 3000) == 1;
    int reported = zreap_all(on_b, &b);
    fprintf(stderr, "%s: fd readable for the other exit: %d, zreap_all() reported %d\n", name, readable, reported);
    CHECK(readable && reported == 1 && b_reported == 1);
    b_reported = 0;
    CHECK(kill(a, SIGKILL) == 0 && zwait(a, NULL, 0) == a);
    CHECK(ctest_children() == 0);
    if (installed) CHECK(zreap_uninstall() == 0);
}

int main(void) {
    ctest_start();
    scope("ZREAP_OWN", ZREAP_OWN, 1);
    scope("ZREAP_OWN | ZREAP_NO_HANDLER", ZREAP_OWN | ZREAP_NO_HANDLER, 1);
    scope("ZREAP_NO_HANDLER", ZREAP_NO_HANDLER, 1);
    scope("zreap_install(0)", 0, 1);
    scope("nothing installed", 0, 0);
    other_exit_stays_announced("ZREAP_OWN", ZREAP_OWN, 1);
    other_exit_stays_announced("ZREAP_OWN | ZREAP_NO_HANDLER", ZREAP_OWN | ZREAP_NO_HANDLER, 1);
    other_exit_stays_announced("ZREAP_NO_HANDLER", ZREAP_NO_HANDLER, 1);
    other_exit_stays_announced("nothing installed", 0, 0);
    return ctest_finish("reaper_fd_quiet_after_wait");
}
