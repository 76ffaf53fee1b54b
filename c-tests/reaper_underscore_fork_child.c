/* glibc's _Fork() runs no fork handlers, but the kernel gives its child a
 * thread-id address, as fork()'s: the child takes zreap's state over at its
 * first use, as a fork() child does. Under zreap_install(0), beside a tracked
 * child (so the keeper runs), a _Fork() child makes a child of its own that
 * exits 3: its zwait() gets 3, its stats count only its own child, and its
 * parent's tracked child is not its business (zwait gives ECHILD). The parent
 * still gets its tracked child's exit, and no zombie is left.
 *
 * Then all of it again in a fresh process where madvise(MADV_WIPEONFORK)
 * fails with EINVAL, as before Linux 4.14: the _Fork() child, whose fork page
 * is then its parent's copy, still takes the state over at its first use. */
#include "ctest.h"
#include <sys/mman.h>

pid_t _Fork(void);

/* madvise(MADV_WIPEONFORK) fails with EINVAL from now on, here and in every
 * child: 1 once it does, -1 where no seccomp filter can be installed (another
 * architecture, a kernel without CONFIG_SECCOMP_FILTER), else 0. */
static int refuse_wipe_on_fork(void) {
    if (!ctest_refuse_call(__NR_madvise, 2, MADV_WIPEONFORK))
        return -1;
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int refused = page != MAP_FAILED && madvise(page, 4096, MADV_WIPEONFORK) == -1 && errno == EINVAL;
    if (page != MAP_FAILED)
        munmap(page, 4096);
    return refused;
}

int main(int argc, char **argv) {
    ctest_start();
    int no_wipe = argc > 1 && strcmp(argv[1], "no-wipe") == 0;
    if (no_wipe) {
        int refused = refuse_wipe_on_fork();
        if (refused < 0) {
            printf("reaper_underscore_fork_child (no MADV_WIPEONFORK): skipped, no seccomp filter (%s)\n", strerror(errno));
            return 0;
        }
        CHECK(refused == 1);
    }
    CHECK(zreap_install(0) == 0);
    int hold[2];
    CHECK(pipe2(hold, O_CLOEXEC) == 0);
    char *sh_argv[] = {"sh", "-c", "read line", NULL};
    zspawn_options opts;
    zspawn_options_init(&opts);
    opts.stdin_fd = hold[0];
    pid_t tracked = zspawn("/bin/sh", sh_argv, NULL, &opts);
    CHECK(tracked > 0);

    pid_t child = _Fork();
    CHECK(child >= 0);
    if (child == 0) {
        int code = 0;
        /* Its first call: the counters are already its own (none). */
        zreap_stats first;
        if (zreap_stats_get(&first) != 0 || first.tracked != 0 || first.reaped != 0)
            code |= 8;
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
        fprintf(stderr, "_Fork child failed checks %d (1: own exit, 2: stats, 4: parent's child, 8: first stats)\n", WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(hold[1]);
    CHECK(zwait(tracked, &status, 0) == tracked);
    CHECK(WIFEXITED(status));
    if (!no_wipe) {
        pid_t again = fork();
        CHECK(again >= 0);
        if (again == 0) {
            execl("/proc/self/exe", argv[0], "no-wipe", (char *)NULL);
            _exit(127);
        }
        CHECK(zwait(again, &status, 0) == again);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(ctest_zombies() == 0);
    return ctest_finish(no_wipe ? "reaper_underscore_fork_child (no MADV_WIPEONFORK)" : "reaper_underscore_fork_child");
}
