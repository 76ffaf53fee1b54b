/* The reap fd stays readable while an exited child waits to be reaped, also
 * after a zwait(pid) took another child's exit. Without a SIGCHLD handler
 * (ZREAP_NO_HANDLER, or nothing installed) the library's watcher thread makes
 * the fd readable when it sees a plain fork() child exit; a zwait(pid) that
 * then took a second child's exit once drained the fd with the first exit
 * still unreaped, and a poll() loop or a blocked zwait(-1) slept on (up to the
 * zwait(-1)'s 1 s backstop, or until the next exit).
 * Each round: child A exits, the fd turns readable; child B is released and
 * zwait(B) takes it; the fd must still be readable, and zreap_all() then
 * reports A alone, after which the fd is not readable. */
#include "ctest.h"
#include <poll.h>

static int readable(int ms) {
    struct pollfd pfd = {zreap_fd(), POLLIN, 0};
    return poll(&pfd, 1, ms) == 1;
}

static pid_t reported;
static int reported_status, reports;

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    reported = pid;
    reported_status = wstatus;
    reports++;
}

static void rounds(const char *scope) {
    int kept = 0;
    for (int round = 0; round < 20; round++) {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid_t b = fork();
        if (b == 0) {
            char c;
            close(p[1]);
            (void)!read(p[0], &c, 1);
            _exit(2);
        }
        close(p[0]);
        pid_t a = fork();
        if (a == 0) _exit(1);
        CHECK(a > 0 && b > 0);
        CHECK(readable(5000)); /* a's exit, announced by the watcher */
        close(p[1]);
        int st = -1;
        CHECK(zwait(b, &st, 0) == b && WIFEXITED(st) && WEXITSTATUS(st) == 2);
        int still = readable(0);
        kept += still;
        reports = 0;
        CHECK(zreap_all(on_exit_cb, NULL) == 1);
        CHECK(reports == 1 && reported == a && WIFEXITED(reported_status) && WEXITSTATUS(reported_status) == 1);
        CHECK(!readable(0));
        CHECK(ctest_zombies() == 0);
    }
    fprintf(stderr, "  %s: the fd stayed readable for the unreaped exit in %d of 20 rounds\n", scope, kept);
    CHECK(kept == 20);
}

int main(void) {
    ctest_start();
    CHECK(zreap_fd() >= 0);
    rounds("nothing installed");
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    rounds("ZREAP_NO_HANDLER");
    return ctest_finish("reaper_fd_unreaped_exit");
}
