/* shim_fork_child.c: what a child inherits of the shim under ZREAP_REAP=all.
 *
 * The parent forks a child that exits 7 and does not wait for it: the shim
 * reaps it and keeps its status. Each kind of child the parent then makes
 * must not be handed that status (it belongs to the parent):
 *   - a fork() child whose first shim call is a wait;
 *   - a fork() child whose first shim call is a fork of its own: the
 *     grandchild, never waited for, is reaped, and a wait then returns the
 *     grandchild's status and no other;
 *   - a fork() child whose first shim calls are waits from 8 threads at once;
 *   - a _Fork() child (no fork handlers run);
 *   - a raw clone() child (no fork handlers, no glibc bookkeeping);
 *   - with argv[1] = "handler" (the parent installs a SIGCHLD handler that
 *     waits for nothing, so the shim stores the exits it leaves): a fork()
 *     child whose first shim call is that handler, run for a grandchild made
 *     with a raw clone() (which the shim does not see), and whose wait there
 *     gets that grandchild.
 * Each child checks this itself and exits 0 when it held. Finally the parent's
 * own wait returns the stored 7, exactly once.
 *
 * Run with ZREAP_REAP=all, with and without ZREAP_PDEATHSIG (which makes the
 * shim run code in every forked child). With argv[2] = "no-tid-address" a
 * seccomp filter first makes prctl(PR_GET_TID_ADDRESS) fail with EINVAL, as on
 * a kernel built without CONFIG_CHECKPOINT_RESTORE: the shim must then take
 * its state over in a fork handler. */
#include "ctest.h"
#include <pthread.h>

/* prctl(PR_GET_TID_ADDRESS) fails with EINVAL from now on, here and in every
 * child. */
static int refuse_tid_address(void) {
    int *address = NULL;
    return ctest_refuse_call(__NR_prctl, 0, PR_GET_TID_ADDRESS) && prctl(PR_GET_TID_ADDRESS, &address, 0, 0, 0) == -1 &&
           errno == EINVAL;
}

/* In a child: a wait for any child finds nothing (ECHILD). */
static int nothing_to_wait_for(void) {
    int st = 0;
    errno = 0;
    pid_t got = waitpid(-1, &st, WNOHANG);
    if (got != -1 || errno != ECHILD) {
        fprintf(stderr, "child %d: waitpid(-1) returned %d (status %#x, errno %d), expected ECHILD\n", (int)getpid(),
                (int)got, st, errno);
        return 0;
    }
    return 1;
}

/* Waits until `pid` is gone from /proc (reaped), up to 5 s. */
static int gone(pid_t pid) {
    char state = 0;
    pid_t ppid = 0;
    for (int i = 0; i < 500 && ctest_proc_stat(pid, &state, &ppid) == 0; i++) ctest_sleep_ms(10);
    if (ctest_proc_stat(pid, &state, &ppid) == 0) {
        fprintf(stderr, "%d is still there (state %c)\n", (int)pid, state);
        return 0;
    }
    return 1;
}

/* A fork() child whose first shim call is a fork: the grandchild exits 3 and
 * is reaped by the shim; waits then see exactly it. */
static int grandchild_round(void) {
    pid_t grandchild = fork();
    if (grandchild == 0) _exit(3);
    if (grandchild < 0 || !gone(grandchild)) return 0;
    int st = 0;
    pid_t got = waitpid(-1, &st, 0);
    if (got != grandchild || !WIFEXITED(st) || WEXITSTATUS(st) != 3) {
        fprintf(stderr, "waitpid(-1) returned %d status %#x, expected %d with exit 3\n", (int)got, st,
                (int)grandchild);
        return 0;
    }
    return nothing_to_wait_for();
}

static void *wait_in_thread(void *arg) {
    (void)arg;
    return (void *)(long)nothing_to_wait_for();
}

/* Eight threads make the child's first shim calls at once. */
static int threads_round(void) {
    pthread_t threads[8];
    int ok = 1;
    for (int i = 0; i < 8; i++) {
        if (pthread_create(&threads[i], NULL, wait_in_thread, NULL) != 0) return 0;
    }
    for (int i = 0; i < 8; i++) {
        void *result = NULL;
        pthread_join(threads[i], &result);
        ok &= result != NULL;
    }
    return ok;
}

/* The handler: waits for any child and records what it got (the parent's
 * copy waits for nothing: `wait_in_handler` is set only in the child). */
static volatile sig_atomic_t wait_in_handler, handler_got, handler_status;

static void on_chld(int sig) {
    (void)sig;
    if (!wait_in_handler) return;
    int saved = errno, st = 0;
    pid_t got = waitpid(-1, &st, WNOHANG);
    if (got > 0) {
        handler_got = got;
        handler_status = st;
    }
    errno = saved;
}

/* The child's first shim call is the shim's SIGCHLD handler. */
static int handler_round(void) {
    wait_in_handler = 1;
    pid_t grandchild = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (grandchild == 0) _exit(4);
    if (grandchild < 0) return 0;
    for (int i = 0; i < 500 && handler_got == 0; i++) ctest_sleep_ms(10);
    if (handler_got != grandchild || !WIFEXITED(handler_status) || WEXITSTATUS(handler_status) != 4) {
        fprintf(stderr, "the handler's waitpid(-1) got %d status %#x, expected %d with exit 4\n", (int)handler_got,
                (int)handler_status, (int)grandchild);
        return 0;
    }
    return nothing_to_wait_for();
}

int main(int argc, char **argv) {
    ctest_start();
    alarm(60);
    int with_handler = argc > 1 && strcmp(argv[1], "handler") == 0;
    if (argc > 2 && strcmp(argv[2], "no-tid-address") == 0) {
        CHECK(refuse_tid_address());
    }
    if (with_handler) {
        struct sigaction act = {0};
        act.sa_handler = on_chld;
        act.sa_flags = SA_RESTART;
        CHECK(sigaction(SIGCHLD, &act, NULL) == 0);
    }

    pid_t first = fork();
    if (first == 0) _exit(7);
    CHECK(first > 0);
    /* The shim reaps it (its /proc entry goes) and keeps the status. */
    CHECK(gone(first));

    enum { KINDS = 6 };
    const char *what[KINDS] = {"fork, wait first", "fork, fork first", "fork, 8 threads wait first",
                               "_Fork",            "raw clone",        "fork, handler first"};
    pid_t kids[KINDS];
    int n = 0;
    kids[n] = fork();
    if (kids[n] == 0) _exit(nothing_to_wait_for() ? 0 : 1);
    n++;
    kids[n] = fork();
    if (kids[n] == 0) _exit(grandchild_round() ? 0 : 1);
    n++;
    kids[n] = fork();
    if (kids[n] == 0) _exit(threads_round() ? 0 : 1);
    n++;
    kids[n] = _Fork();
    if (kids[n] == 0) _exit(nothing_to_wait_for() ? 0 : 1);
    n++;
    kids[n] = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (kids[n] == 0) _exit(nothing_to_wait_for() ? 0 : 1);
    n++;
    if (with_handler) {
        kids[n] = fork();
        if (kids[n] == 0) _exit(handler_round() ? 0 : 1);
        n++;
    }

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
