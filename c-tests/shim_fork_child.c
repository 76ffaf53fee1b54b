/* shim_fork_child.c: what a child inherits of the shim under ZREAP_REAP=all.
 *
 * The parent forks a child that exits 7 and does not wait for it: the shim
 * reaps it and keeps its status. Each kind of child the parent then makes
 * must not be handed that status (it belongs to the parent):
 *   - a fork() child whose first shim call is a wait;
 *   - a fork() child whose first shim call is a fork of its own: the
 *     grandchild, never waited for, is reaped, and a wait then returns the
 *     grandchild's status and no other;
 *   - a _Fork() child (no fork handlers run);
 *   - a raw clone() child (no fork handlers, no glibc bookkeeping).
 * Each child checks this itself and exits 0 when it held. Finally the parent's
 * own wait returns the stored 7, exactly once.
 *
 * Run with ZREAP_REAP=all, with and without ZREAP_PDEATHSIG (which makes the
 * shim run code in every forked child). */
#include "ctest.h"
#include <sys/syscall.h>

/* In a child: a wait for any child finds nothing (ECHILD). */
static int nothing_to_wait_for(void) {
    int st;
    errno = 0;
    pid_t got = waitpid(-1, &st, WNOHANG);
    if (got != -1 || errno != ECHILD) {
        fprintf(stderr, "child %d: waitpid(-1) returned %d (status %#x, errno %d), expected ECHILD\n", (int)getpid(),
                (int)got, st, errno);
        return 0;
    }
    return 1;
}

/* A fork() child whose first shim call is a fork: the grandchild exits 3 and
 * is reaped by the shim; waits then see exactly it. */
static int grandchild_round(void) {
    pid_t grandchild = fork();
    if (grandchild == 0) _exit(3);
    if (grandchild < 0) return 0;
    char state = 0;
    pid_t ppid = 0;
    /* Reaped by the shim (gone from /proc), or still a zombie after 5 s. */
    for (int i = 0; i < 500 && ctest_proc_stat(grandchild, &state, &ppid) == 0; i++) ctest_sleep_ms(10);
    if (ctest_proc_stat(grandchild, &state, &ppid) == 0) {
        fprintf(stderr, "grandchild %d is still there (state %c)\n", (int)grandchild, state);
        return 0;
    }
    int st = 0;
    pid_t got = waitpid(-1, &st, 0);
    if (got != grandchild || !WIFEXITED(st) || WEXITSTATUS(st) != 3) {
        fprintf(stderr, "waitpid(-1) returned %d status %#x, expected %d with exit 3\n", (int)got, st,
                (int)grandchild);
        return 0;
    }
    return nothing_to_wait_for();
}

int main(void) {
    ctest_start();
    alarm(60);

    pid_t first = fork();
    if (first == 0) _exit(7);
    CHECK(first > 0);
    /* The shim reaps it (its /proc entry goes) and keeps the status. */
    char state = 0;
    pid_t ppid = 0;
    WAIT_UNTIL(ctest_proc_stat(first, &state, &ppid) != 0, 5000);
    CHECK(ctest_proc_stat(first, &state, &ppid) != 0);

    pid_t kids[4];
    int n = 0;
    kids[n] = fork();
    if (kids[n] == 0) _exit(nothing_to_wait_for() ? 0 : 1);
    n++;
    kids[n] = fork();
    if (kids[n] == 0) _exit(grandchild_round() ? 0 : 1);
    n++;
    kids[n] = _Fork();
    if (kids[n] == 0) _exit(nothing_to_wait_for() ? 0 : 1);
    n++;
    kids[n] = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (kids[n] == 0) _exit(nothing_to_wait_for() ? 0 : 1);
    n++;

    const char *what[] = {"fork, wait first", "fork, fork first", "_Fork", "raw clone"};
    for (int i = 0; i < n; i++) {
        CHECK(kids[i] > 0);
        int st = -1;
        CHECK(waitpid(kids[i], &st, 0) == kids[i]);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!ok) fprintf(stderr, "%s child: status %#x\n", what[i], st);
        CHECK(ok);
    }

    int st = -1;
    CHECK(waitpid(first, &st, 0) == first);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK_ERR(waitpid(first, &st, WNOHANG), ECHILD);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("shim_fork_child");
}
