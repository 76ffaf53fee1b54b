/* shim_nproc.c: a program at its RLIMIT_NPROC that never waits for its
 * children. Started as root, it first takes a user id of its own (no other
 * process has it, so the limit counts this program's processes alone) and
 * sets the limit to 2: the program and one child. The shim's reaper thread,
 * which counts as a process, cannot start.
 *
 * The program forks 40 children that exit at once, never waiting for them,
 * and retries a fork that fails with EAGAIN for up to 2 s. Without the shim
 * the first child's zombie holds the second slot for good: 1 child made.
 * Under ZREAP_REAP=all every child is made: the thread that forks reaps the
 * exited children itself. Then the soft limit is raised, the next fork starts
 * the reaper thread, and no zombie is left.
 *
 * Prints "made N" and exits 0; argv[1] "all" adds the checks that hold only
 * under the shim's all mode. */
#include "ctest.h"

#include <sys/resource.h>

#define CHILDREN 40

/* A fork retried on EAGAIN for up to 2 s. */
static pid_t fork_retrying(void) {
    for (int tries = 0;; tries++) {
        pid_t child = fork();
        if (child >= 0 || errno != EAGAIN || tries == 200) return child;
        ctest_sleep_ms(10);
    }
}

int main(int argc, char **argv) {
    ctest_start();
    int all = argc > 1 && strcmp(argv[1], "all") == 0;
    uid_t own = (uid_t)(40000 + getpid() % 20000);
    CHECK(geteuid() == 0);
    CHECK(setresgid(own, own, own) == 0);
    CHECK(setresuid(own, own, own) == 0);
    struct rlimit limit;
    CHECK(getrlimit(RLIMIT_NPROC, &limit) == 0);
    rlim_t hard = limit.rlim_max;
    limit.rlim_cur = 2;
    CHECK(setrlimit(RLIMIT_NPROC, &limit) == 0);
    int made = 0;
    for (int i = 0; i < CHILDREN; i++) {
        pid_t child = fork_retrying();
        if (child == 0) _exit(0);
        if (child < 0) break;
        made++;
    }
    printf("made %d\n", made);
    if (all) {
        CHECK(made == CHILDREN);
        limit.rlim_cur = hard;
        CHECK(setrlimit(RLIMIT_NPROC, &limit) == 0);
        pid_t last = fork();
        if (last == 0) _exit(0);
        CHECK(last > 0);
        /* Until `last` has exited and been reaped: zombies() == 0 alone
         * holds at once while `last` has not run yet, and its zombie may
         * appear just after (before the reaper thread's next look). */
        WAIT_UNTIL(ctest_children() == 0, 10000);
        CHECK(ctest_children() == 0);
        CHECK(ctest_zombies() == 0);
    } else {
        while (waitpid(-1, NULL, 0) > 0) {
        }
    }
    return ctest_finish("shim_nproc");
}
