/* shim_pidfd.c: a program that waits for its children through pidfds
 * (pidfd_open, poll, waitid(P_PIDFD), pidfd_send_signal) gets the answers it
 * would get for a zombie, also once the shim has reaped the child
 * (ZREAP_REAP=all, SIGCHLD at its default). asyncio's PidfdChildWatcher
 * (Python 3.12's default) opens the pidfd after the child started, by
 * syscall(SYS_pidfd_open): the kernel said ESRCH for a child the shim had
 * reaped already. Pidfds come from glibc's pidfd_open, syscall() and
 * clone(CLONE_PIDFD).
 *
 * Usage: shim_pidfd shim|noshim
 *   shim:   each exited child is reaped by the shim (its /proc entry goes)
 *           before the program looks at it;
 *   noshim: it stays a zombie until the program waits (the kernel's answers,
 *           which the shim must match). */
#include "ctest.h"
#include <poll.h>
#include <sched.h>
#include <sys/pidfd.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

static int shim;

/* Waits (10 s at most) until the exited child `pid` is what this mode makes
 * of it: reaped by the shim, or a zombie. */
static void wait_until_exited(pid_t pid) {
    for (int i = 0; i < 1000; i++) {
        char state = 0;
        pid_t ppid;
        int reaped = ctest_proc_stat(pid, &state, &ppid) == -1;
        if (shim ? reaped : state == 'Z') return;
        usleep(10000);
    }
    CHECK(!"the child was never reaped (shim) or a zombie (noshim)");
}

/* A child that exits with `code` at once. */
static pid_t child_exiting(int code) {
    pid_t pid = fork();
    if (pid == 0) _exit(code);
    CHECK(pid > 0);
    return pid;
}

static int readable_soon(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 2000) == 1 && (p.revents & POLLIN);
}

static void check_exit(const siginfo_t *info, pid_t pid, int code) {
    CHECK(info->si_pid == pid);
    CHECK(info->si_signo == SIGCHLD);
    CHECK(info->si_code == CLD_EXITED);
    CHECK(info->si_status == code);
}

/* pidfd_open after the child exited: a readable pidfd (or stand-in) whose
 * waitid returns the status once; the fd is close-on-exec. */
static void open_after_exit(void) {
    pid_t pid = child_exiting(7);
    wait_until_exited(pid);
    int fd = pidfd_open(pid, 0);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
    CHECK(readable_soon(fd));
    CHECK(pidfd_send_signal(fd, 0, NULL, 0) == 0);
    siginfo_t info = {0};
    CHECK(waitid(P_PIDFD, fd, &info, WEXITED) == 0);
    check_exit(&info, pid, 7);
    CHECK_ERR(waitid(P_PIDFD, fd, &info, WEXITED | WNOHANG), ECHILD);
    CHECK_ERR(waitpid(pid, NULL, WNOHANG), ECHILD);
    close(fd);
}

/* The same through syscall(), as CPython makes the calls, non-blocking; a
 * WNOWAIT look leaves the exit for the next wait. */
static void open_by_syscall(void) {
    pid_t pid = child_exiting(8);
    wait_until_exited(pid);
    int fd = (int)syscall(SYS_pidfd_open, pid, PIDFD_NONBLOCK);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    CHECK(readable_soon(fd));
    CHECK(syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0) == 0);
    siginfo_t info = {0};
    CHECK(waitid(P_PIDFD, fd, &info, WEXITED | WNOWAIT) == 0);
    check_exit(&info, pid, 8);
    memset(&info, 0, sizeof info);
    CHECK(waitid(P_PIDFD, fd, &info, WEXITED | WNOHANG) == 0);
    check_exit(&info, pid, 8);
    CHECK_ERR(waitid(P_PIDFD, fd, &info, WEXITED | WNOHANG), ECHILD);
    close(fd);
}

/* A pidfd opened while the child ran; the child exits (and the shim reaps
 * it) before the program waits. */
static void open_before_exit(void) {
    int release[2];
    CHECK(pipe2(release, O_CLOEXEC) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char byte;
        close(release[1]);
        if (read(release[0], &byte, 1) < 0) _exit(1);
        _exit(9);
    }
    close(release[0]);
    int fd = pidfd_open(pid, 0);
    CHECK(fd >= 0);
    close(release[1]);
    wait_until_exited(pid);
    CHECK(readable_soon(fd));
    CHECK(pidfd_send_signal(fd, SIGKILL, NULL, 0) == 0);
    siginfo_t info = {0};
    CHECK(waitid(P_PIDFD, fd, &info, WEXITED | WNOHANG) == 0);
    check_exit(&info, pid, 9);
    CHECK_ERR(waitid(P_PIDFD, fd, &info, WEXITED | WNOHANG), ECHILD);
    CHECK_ERR(pidfd_send_signal(fd, 0, NULL, 0), ESRCH);
    close(fd);
}

/* A blocking waitid(P_PIDFD) made before the child exits. */
static void blocking_wait(void) {
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        _exit(3);
    }
    int fd = pidfd_open(pid, 0);
    CHECK(fd >= 0);
    siginfo_t info = {0};
    CHECK(waitid(P_PIDFD, fd, &info, WEXITED) == 0);
    check_exit(&info, pid, 3);
    close(fd);
}

/* A pidfd closed unused leaves the exit to the wait family. */
static void closed_unused(void) {
    pid_t pid = child_exiting(4);
    wait_until_exited(pid);
    int fd = pidfd_open(pid, 0);
    CHECK(fd >= 0);
    close(fd);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 4);
    CHECK_ERR(waitpid(pid, NULL, WNOHANG), ECHILD);
}

static int clone_child_body(void *arg) {
    (void)arg;
    return 6;
}

/* glibc's clone with CLONE_PIDFD; a forked child that exits beside it wakes
 * the shim's thread, which reaps both. */
static void clone_with_pidfd(void) {
    static char stack[64 * 1024] __attribute__((aligned(16)));
    int fd = -1;
    pid_t pid = clone(clone_child_body, stack + sizeof stack, CLONE_PIDFD | SIGCHLD, NULL, &fd);
    CHECK(pid > 0 && fd >= 0);
    if (pid <= 0 || fd < 0) return;
    pid_t beside = child_exiting(0);
    wait_until_exited(pid);
    CHECK(readable_soon(fd));
    siginfo_t info = {0};
    CHECK(waitid(P_PIDFD, fd, &info, WEXITED) == 0);
    check_exit(&info, pid, 6);
    close(fd);
    CHECK(waitpid(beside, NULL, 0) == beside);
}

/* What is not a child of this process keeps the kernel's answers. */
static void not_a_child(void) {
    int fd = pidfd_open(getppid(), 0);
    CHECK(fd >= 0);
    siginfo_t info;
    CHECK_ERR(waitid(P_PIDFD, fd, &info, WEXITED | WNOHANG), ECHILD);
    close(fd);
    pid_t gone = fork();
    if (gone == 0) _exit(0);
    CHECK(waitpid(gone, NULL, 0) == gone);
    CHECK_ERR(pidfd_open(gone, 0), ESRCH);
    CHECK_ERR(syscall(SYS_pidfd_open, gone, 0), ESRCH);
    CHECK_ERR(pidfd_open(getpid(), 0x40000000u), EINVAL);
    CHECK_ERR(waitid(P_PIDFD, 1000000, &info, WEXITED | WNOHANG), EBADF);
}

int main(int argc, char **argv) {
    ctest_start();
    if (argc != 2 || (strcmp(argv[1], "shim") != 0 && strcmp(argv[1], "noshim") != 0)) {
        fprintf(stderr, "usage: shim_pidfd shim|noshim\n");
        return 2;
    }
    shim = strcmp(argv[1], "shim") == 0;
    open_after_exit();
    open_by_syscall();
    open_before_exit();
    blocking_wait();
    closed_unused();
    clone_with_pidfd();
    not_a_child();
    return ctest_finish("shim_pidfd");
}
