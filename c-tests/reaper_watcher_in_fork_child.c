/* The internal watcher thread in the child of a plain fork(). The child keeps
 * its parent's configuration but not its threads; from the child's first call
 * into the library, the watcher must run there too:
 * - ZREAP_NO_HANDLER, and zreap_fd() without any install: zreap_fd() turns
 *   readable when the child's own plain child exits (API.md: "plain fork()
 *   children included"), also when the child's first call is zfork();
 * - zreap_install(0) with SIGCHLD blocked in every thread: the child's own
 *   children are reaped without a call (the watcher reaps in the handler's
 *   place), as in the parent.
 * Each case runs in a process of its own (installs are process-wide). */
#include "ctest.h"
#include <poll.h>

static int gone_within(pid_t pid, int ms) {
    char state;
    pid_t ppid;
    for (int i = 0; i < ms / 10; i++) {
        if (ctest_proc_stat(pid, &state, &ppid) != 0) return 1;
        ctest_sleep_ms(10);
    }
    return 0;
}

/* In the forked child: its own plain child must make zreap_fd() readable.
 * With `zfork_first` the child's first call into the library is zfork(),
 * and it polls the fd it has (the same number) before calling zreap_fd(). */
static int fd_turns_readable_in_child(int parent_fd, int zfork_first) {
    pid_t tracked = -1;
    int gate[2] = {-1, -1};
    if (zfork_first) {
        /* Alive until the end: its exit must not be what makes fd readable. */
        tracked = ctest_zfork_gated(gate, 0);
        if (tracked < 0) return 0;
    }
    int fd = zfork_first ? parent_fd : zreap_fd();
    if (fd != parent_fd) fprintf(stderr, "child: zreap_fd() %d, the parent's %d\n", fd, parent_fd);
    pid_t grandchild = fork();
    if (grandchild == 0) _exit(5);
    int ok = ctest_readable(fd, 10000);
    if (!ok) fprintf(stderr, "child: zreap_fd() not readable 10 s after its child %d exited\n", (int)grandchild);
    int reaped = zreap_all(NULL, NULL);
    if (zfork_first) {
        close(gate[1]);
        if (zwait(tracked, NULL, 0) != tracked || zreap_fd() != parent_fd) return 0;
    }
    if (reaped != 1) fprintf(stderr, "child: zreap_all() reported %d exits, want 1\n", reaped);
    return fd == parent_fd && ok && reaped == 1;
}

/* `how`: 1 install ZREAP_NO_HANDLER, 0 no install; 2 as 1 with the fork
 * child's first call a zfork(). */
static void reap_fd_case(int how) {
    int install = how != 0;
    if (install) CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    int fd = zreap_fd();
    CHECK(fd >= 0);
    pid_t own = fork();
    if (own == 0) _exit(3);
    CHECK(ctest_readable(fd, 10000));
    CHECK(zreap_all(NULL, NULL) == 1);
    pid_t mid = fork();
    if (mid == 0) _exit(fd_turns_readable_in_child(fd, how == 2) ? 0 : 1);
    int st;
    CHECK(zwait(mid, &st, 0) == mid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void blocked_case(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
    CHECK(zreap_install(0) == 0);
    pid_t own = fork();
    if (own == 0) _exit(3);
    CHECK(gone_within(own, 10000));
    pid_t mid = fork();
    if (mid == 0) {
        zreap_stats stats;
        zreap_stats_get(&stats); /* the child's first call into the library */
        pid_t grandchild = fork();
        if (grandchild == 0) _exit(5);
        int ok = gone_within(grandchild, 10000);
        if (!ok) fprintf(stderr, "child: its child %d still there 10 s after it exited\n", (int)grandchild);
        _exit(ok ? 0 : 1);
    }
    int st;
    CHECK(zwait(mid, &st, 0) == mid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void in_own_process(const char *name, void (*run)(int), int arg) {
    pid_t p = fork();
    if (p == 0) {
        ctest_failures = 0; /* this case's own */
        run(arg);
        _exit(ctest_failures ? 1 : 0);
    }
    int st;
    CHECK(waitpid(p, &st, 0) == p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "case %s failed\n", name);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void blocked(int unused) {
    (void)unused;
    blocked_case();
}

int main(void) {
    ctest_start();
    in_own_process("ZREAP_NO_HANDLER", reap_fd_case, 1);
    in_own_process("zreap_fd without install", reap_fd_case, 0);
    in_own_process("ZREAP_NO_HANDLER, zfork first in the child", reap_fd_case, 2);
    in_own_process("SIGCHLD blocked", blocked, 0);
    return ctest_finish("reaper_watcher_in_fork_child");
}
