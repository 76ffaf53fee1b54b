/* shim_pid_reuse.c: once the shim has reaped a child, the kernel may give its
 * pid to another process, which the child's zombie would have kept from it.
 * The stored exit must then answer neither for a newer child that got the
 * pid nor let a signal meant for the old child reach the process that has it.
 * Runs in a pid namespace of its own, where the next pid can be chosen
 * (ctest_pid.h), under ZREAP_REAP=all.
 *
 * Usage: shim_pid_reuse MAKER
 *   MAKER: how the newer child is made: fork, vfork, posix_spawn, clone
 *          (glibc's wrapper) or _Fork.
 *
 * new-child: child A exits 13 and the shim reaps it; child B (made by MAKER)
 *            gets A's pid. waitpid(pid, WNOHANG) says B runs, pidfd_open(pid)
 *            gives B's pidfd, kill(pid, 0) finds B; waitpid(pid) returns B's
 *            42, and A's 13 goes to a wait for any child.
 * stranger:  child A exits 13 and the shim reaps it; a grandchild gets A's
 *            pid. kill(pid, SIGTERM) must not reach it (A's zombie would have
 *            taken the signal); waitpid(pid) still returns A's 13.
 * unseen:    child A exits 13 and the shim reaps it; child B, made by a raw
 *            clone system call (which the shim does not see), gets A's pid:
 *            kill(pid, SIGTERM) reaches B (the kernel has a child with the
 *            pid, so the stored exit is an older process's).
 * old-pidfd: a pidfd kept after its child A was waited for, and a pidfd of a
 *            grandchild G; then children the shim reaps get A's and G's pids.
 *            waitid(P_PIDFD) on the old pidfds says ECHILD and takes nothing
 *            (it returned the newer child's status, which waitpid then
 *            lacked). */
#include "ctest.h"
#include "ctest_pid.h"

#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/pidfd.h>

extern char **environ;
pid_t _Fork(void);

static int gate_fd;

/* A child made by `fork` that exits `code` at once; returns once the shim
 * has reaped it (its /proc entry is gone) and stored its exit. */
static pid_t reaped_child(int code) {
    pid_t pid = fork();
    if (pid == 0) _exit(code);
    char state;
    pid_t ppid;
    WAIT_UNTIL(ctest_proc_stat(pid, &state, &ppid) == -1, 10000);
    CHECK(ctest_proc_stat(pid, &state, &ppid) == -1);
    ctest_sleep_ms(50); /* the exit reaches the store just after the reap */
    return pid;
}

/* The body of a child that waits on the gate, then exits 42. Raw system
 * calls: a clone or _Fork child's libc state is its parent's. */
static int gated_body(void *arg) {
    (void)arg;
    char byte;
    while (syscall(SYS_read, gate_fd, &byte, 1) == -1 && errno == EINTR) {
    }
    return 42;
}

/* Makes the newer child with `maker`, waiting on `gate`. */
static pid_t make_gated(const char *maker, int gate) {
    gate_fd = gate;
    char *argv[] = {"sh", "-c", "read x; exit 42", NULL};
    if (strcmp(maker, "vfork") == 0) {
        pid_t pid = vfork();
        if (pid == 0) {
            dup2(gate, 0);
            execve("/bin/sh", argv, environ);
            _exit(127);
        }
        return pid;
    }
    if (strcmp(maker, "posix_spawn") == 0) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, gate, 0);
        pid_t pid = -1;
        int rc = posix_spawn(&pid, "/bin/sh", &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        return rc == 0 ? pid : -1;
    }
    if (strcmp(maker, "clone") == 0) {
        static char stack[64 * 1024] __attribute__((aligned(16)));
        return clone(gated_body, stack + sizeof stack, SIGCHLD, NULL);
    }
    pid_t pid = strcmp(maker, "_Fork") == 0 ? _Fork() : fork();
    if (pid == 0) _exit(gated_body(NULL));
    return pid;
}

static void new_child(const char *maker) {
    pid_t old = reaped_child(13);
    int gate[2];
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    CHECK(ctest_next_pid_is(old) == 0);
    pid_t pid = make_gated(maker, gate[0]);
    close(gate[0]);
    CHECK(pid == old);
    int st = -1;
    CHECK(waitpid(pid, &st, WNOHANG) == 0);
    int fd = pidfd_open(pid, 0);
    CHECK(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0);
    CHECK(kill(pid, 0) == 0);
    CHECK(write(gate[1], "\n", 1) == 1); /* a forked child holds the write end too */
    close(gate[1]);
    CHECK(poll(&p, 1, 5000) == 1);
    siginfo_t info = {0};
    CHECK(waitid(P_PIDFD, fd, &info, WEXITED | WNOWAIT) == 0);
    CHECK(info.si_pid == pid && info.si_code == CLD_EXITED && info.si_status == 42);
    close(fd);
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    st = -1;
    CHECK(wait(&st) == old);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 13);
    CHECK_ERR(wait(&st), ECHILD);
}

static void stranger(void) {
    pid_t old = reaped_child(13);
    int report[2];
    CHECK(pipe2(report, O_CLOEXEC) == 0);
    pid_t helper = fork();
    if (helper == 0) {
        /* The grandchild gets the old pid and sleeps until killed. */
        if (ctest_next_pid_is(old) != 0) _exit(2);
        pid_t grandchild = fork();
        if (grandchild == 0) {
            for (;;) pause();
        }
        if (write(report[1], &grandchild, sizeof grandchild) != sizeof grandchild) _exit(3);
        int st;
        while (waitpid(grandchild, &st, 0) == -1 && errno == EINTR) {
        }
        _exit(WIFSIGNALED(st) ? 0 : 4);
    }
    pid_t grandchild = -1;
    CHECK(read(report[0], &grandchild, sizeof grandchild) == sizeof grandchild);
    CHECK(grandchild == old);
    CHECK(kill(old, SIGTERM) == 0);
    ctest_sleep_ms(200);
    CHECK(ctest_proc_stat(grandchild, &(char){0}, &(pid_t){0}) == 0);
    int st = -1;
    CHECK(waitpid(old, &st, 0) == old);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 13);
    /* The program has collected its child: the pid is the grandchild's now. */
    CHECK(kill(grandchild, SIGKILL) == 0);
    CHECK(waitpid(helper, &st, 0) == helper);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void unseen(void) {
    pid_t old = reaped_child(13);
    CHECK(ctest_next_pid_is(old) == 0);
    long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        for (;;) syscall(SYS_pause);
    }
    CHECK(pid == old);
    CHECK(kill((pid_t)pid, SIGTERM) == 0);
    char state = 0;
    pid_t ppid;
    WAIT_UNTIL(ctest_proc_stat((pid_t)pid, &state, &ppid) == -1 || state == 'Z', 5000);
    CHECK(ctest_proc_stat((pid_t)pid, &state, &ppid) == -1 || state == 'Z');
    syscall(SYS_kill, pid, SIGKILL); /* if the signal was kept from it */
    int exited = 0, killed = 0;
    for (int i = 0; i < 2; i++) {
        int st = -1;
        CHECK(wait(&st) == old);
        exited += WIFEXITED(st) && WEXITSTATUS(st) == 13;
        killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM;
    }
    CHECK(exited == 1 && killed == 1);
}

/* A child made by `fork` that exits `code` at once, with the pid `pid`;
 * returns once the shim has reaped it. */
static void reaped_child_with_pid(pid_t pid, int code) {
    CHECK(ctest_next_pid_is(pid) == 0);
    pid_t got = fork();
    if (got == 0) _exit(code);
    CHECK(got == pid);
    char state;
    pid_t ppid;
    WAIT_UNTIL(ctest_proc_stat(pid, &state, &ppid) == -1, 10000);
    ctest_sleep_ms(50);
}

static void old_pidfd(void) {
    /* A pidfd of a child that was waited for. */
    pid_t waited = fork();
    if (waited == 0) _exit(3);
    int waited_fd = pidfd_open(waited, 0);
    CHECK(waited_fd >= 0);
    int st = -1;
    CHECK(waitpid(waited, &st, 0) == waited);
    reaped_child_with_pid(waited, 44);
    siginfo_t info = {0};
    CHECK_ERR(waitid(P_PIDFD, waited_fd, &info, WEXITED | WNOHANG), ECHILD);
    CHECK_ERR(pidfd_send_signal(waited_fd, 0, NULL, 0), ESRCH);
    CHECK(waitpid(waited, &st, WNOHANG) == waited);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 44);
    close(waited_fd);
    /* A pidfd of a grandchild. */
    int report[2], release[2];
    CHECK(pipe2(report, O_CLOEXEC) == 0);
    CHECK(pipe2(release, O_CLOEXEC) == 0);
    pid_t helper = fork();
    if (helper == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) {
            char byte;
            while (read(release[0], &byte, 1) == -1 && errno == EINTR) {
            }
            _exit(0);
        }
        if (write(report[1], &grandchild, sizeof grandchild) != sizeof grandchild) _exit(3);
        waitpid(grandchild, NULL, 0);
        _exit(0);
    }
    pid_t grandchild = -1;
    CHECK(read(report[0], &grandchild, sizeof grandchild) == sizeof grandchild);
    int grandchild_fd = pidfd_open(grandchild, 0);
    CHECK(grandchild_fd >= 0);
    CHECK(write(release[1], "x", 1) == 1);
    close(report[0]);
    close(report[1]);
    close(release[0]);
    close(release[1]);
    CHECK(waitpid(helper, &st, 0) == helper);
    reaped_child_with_pid(grandchild, 55);
    CHECK_ERR(waitid(P_PIDFD, grandchild_fd, &info, WEXITED | WNOHANG), ECHILD);
    CHECK(waitpid(grandchild, &st, WNOHANG) == grandchild);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 55);
    close(grandchild_fd);
}

int main(int argc, char **argv) {
    ctest_start();
    ctest_leave_ns_init();
    if (argc != 2) {
        fprintf(stderr, "usage: shim_pid_reuse fork|vfork|posix_spawn|clone|_Fork\n");
        return 2;
    }
    if (ctest_pid_control_open() < 0) {
        perror("/proc/sys/kernel/ns_last_pid (run in a new pid namespace)");
        return 2;
    }
    new_child(argv[1]);
    stranger();
    unseen();
    old_pidfd();
    return ctest_finish("shim_pid_reuse");
}
