/* glibc's _Fork() runs no fork handlers, but the kernel gives its child a
 * thread-id address, as fork()'s: the child takes zreap's state over at its
 * first use, as a fork() child does. Under zreap_install(0), beside a tracked
 * child (so the keeper runs), a _Fork() child makes a child of its own that
 * exits 3: its zwait() gets 3, its stats count only its own child, and its
 * parent's tracked child is not its business (zwait gives ECHILD). The parent
 * still gets its tracked child's exit, and no zombie is left. */
#include "ctest.h"

pid_t _Fork(void);

int main(void) {
    ctest_start();
    CHECK(zreap_install(0) == 0);
    int hold[2];
    CHECK(pipe2(hold, O_CLOEXEC) == 0);
    char *argv[] = {"sh", "-c", "read line", NULL};
    zspawn_options opts;
    zspawn_options_init(&opts);
    opts.stdin_fd = hold[0];
    pid_t tracked = zspawn("/bin/sh", argv, NULL, &opts);
    CHECK(tracked > 0);

    pid_t child = _Fork();
    CHECK(child >= 0);
    if (child == 0) {
        int code = 0;
        pid_t own = fork();
        if (own == 0)
            _exit(3);
        int status = -1;
        if (zwait(own, &status, 0) != own || !WIFEXITED(status) || WEXITSTATUS(status) != 3)
            code |= 1;
        zreap_stats stats;
        if (zreap_stats_get(&stats) != 0 || stats.tracked != 0 || stats.reaped != 1)
            code |= 2;
        errno = 0;
        if (zwait(tracked, &status, WNOHANG) != -1 || errno != ECHILD)
            code |= 4;
        _exit(code);
    }
    int status = -1;
    CHECK(zwait(child, &status, 0) == child);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "_Fork child failed checks %d (1: own exit, 2: stats, 4: parent's child)\n", WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(hold[1]);
    CHECK(zwait(tracked, &status, 0) == tracked);
    CHECK(WIFEXITED(status));
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_underscore_fork_child");
}
