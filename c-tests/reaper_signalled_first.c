/* zreap_install(0) reaps the child a SIGCHLD names by pid before it walks the
 * children. The walk must still follow: with SIGCHLD blocked, one child exits
 * first (the pending SIGCHLD names it), then untracked fork() children and a
 * tracked one exit while it is pending, so their SIGCHLDs are merged into it.
 * Once SIGCHLD is unblocked, the handler must reap them all, with no zreap
 * call from the program, and each exit be delivered once. The first child is
 * untracked; or tracked (parked under the all-children handler: it stays a
 * zombie until the handler runs); or the pending SIGCHLD is one the program
 * sent itself. */
#include "ctest.h"

#define UNTRACKED 6

static void exit_and_wait(pid_t pid, int fd) {
    CHECK(close(fd) == 0);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    CHECK(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) == 0 || errno == ECHILD);
}

static int seen, right;
static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    pid_t *pids = ctx;
    seen++;
    for (int i = 0; i < UNTRACKED + 2; i++) {
        right += pids[i] == pid && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == i + 1;
    }
}

/* A child blocked on a pipe: tracked (zfork) or not (fork); it exits with
 * `code` once the pipe's write end (returned in *fd) is closed. */
static pid_t blocked_child(int tracked, int code, int *fd) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = tracked ? zfork(NULL) : fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char c;
        /* The write ends of the earlier children's pipes are inherited too. */
        int in = dup2(p[0], 3);
        CHECK(in == 3 && close_range(4, ~0U, 0) == 0);
        while (read(in, &c, 1) == -1 && errno == EINTR) {
        }
        _exit(code);
    }
    close(p[0]);
    *fd = p[1];
    return pid;
}

static void round_trip(int variant) {
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pid_t pids[UNTRACKED + 2];
    int fds[UNTRACKED + 2];
    pids[0] = blocked_child(variant == 1, 1, &fds[0]);
    for (int i = 1; i <= UNTRACKED; i++) {
        pids[i] = blocked_child(0, i + 1, &fds[i]);
    }
    pids[UNTRACKED + 1] = blocked_child(1, UNTRACKED + 2, &fds[UNTRACKED + 1]);

    CHECK(sigprocmask(SIG_BLOCK, &chld, &old) == 0);
    if (variant == 2) {
        CHECK(kill(getpid(), SIGCHLD) == 0);
    }
    exit_and_wait(pids[0], fds[0]);
    for (int i = 1; i < UNTRACKED + 2; i++) {
        exit_and_wait(pids[i], fds[i]);
    }
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);

    WAIT_UNTIL(ctest_zombies() == 0, 10000);
    CHECK(ctest_zombies() == 0);
    seen = right = 0;
    CHECK(zreap_all(on_exit_cb, pids) == UNTRACKED + 2);
    CHECK(seen == UNTRACKED + 2 && right == UNTRACKED + 2);
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(0) == 0);
    for (int round = 0; round < 10; round++) {
        round_trip(round % 3);
    }
    CHECK(zwait(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
    return ctest_finish("reaper_signalled_first");
}
