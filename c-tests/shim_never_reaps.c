/* shim_never_reaps.c: makes N children and does not wait for them (SIGCHLD
 * at its default). Then, once they have all exited, it waits for each one
 * with the wait call named by argv[1] and checks the status, exactly once.
 *
 * Usage: shim_never_reaps waitpid|wait|wait3|wait4|waitid  shim|noshim  [MAKER]
 *   shim:   (ZREAP_REAP=all) no zombie appears while the program never waits
 *   noshim: the N zombies appear (the zombie check itself works)
 *   MAKER:  how each child is made: fork (the default), vfork (+ execve of
 *           /bin/sh, as gcc's driver does), clone (glibc's wrapper, no
 *           CLONE_VM), _Fork (glibc 2.34's fork without handlers) or forkpty
 *           (which forks inside libc)
 * Child i exits with code 10+i; the last child dies by SIGTERM. */
#include "ctest.h"
#include <pty.h>
#include <sched.h>
#include <sys/resource.h>

#define N 10

static pid_t pids[N];

/* The body of child i: exits 10+i, or the last one dies by SIGTERM. Raw
 * system calls: a clone child's glibc still holds its parent's thread id. */
static int child_body(int i) {
    if (i == N - 1) syscall(SYS_kill, syscall(SYS_getpid), SIGTERM);
    return 10 + i;
}

static int clone_child(void *arg) { return child_body((int)(long)arg); }

extern char **environ;
pid_t _Fork(void);

/* Makes child i with `maker`; returns its pid (the child never returns). */
static pid_t make_child(const char *maker, int i) {
    if (strcmp(maker, "vfork") == 0) {
        char script[64];
        if (i == N - 1)
            snprintf(script, sizeof script, "kill -TERM $$");
        else
            snprintf(script, sizeof script, "exit %d", 10 + i);
        char *argv[] = {"sh", "-c", script, NULL};
        pid_t pid = vfork();
        if (pid == 0) {
            execve("/bin/sh", argv, environ);
            _exit(127);
        }
        return pid;
    }
    if (strcmp(maker, "clone") == 0) {
        static char stack[64 * 1024] __attribute__((aligned(16)));
        return clone(clone_child, stack + sizeof stack, SIGCHLD, (void *)(long)i);
    }
    pid_t pid;
    if (strcmp(maker, "_Fork") == 0) {
        pid = _Fork();
    } else if (strcmp(maker, "forkpty") == 0) {
        int master; /* left open: the child's terminal stays until the test ends */
        pid = forkpty(&master, NULL, NULL, NULL);
    } else {
        pid = fork();
    }
    if (pid == 0) _exit(child_body(i));
    return pid;
}

static int expected_status_ok(int i, int status) {
    if (i == N - 1) return WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
    return WIFEXITED(status) && WEXITSTATUS(status) == 10 + i;
}

static int index_of(pid_t pid) {
    for (int i = 0; i < N; i++)
        if (pids[i] == pid) return i;
    return -1;
}

int main(int argc, char **argv) {
    ctest_start();
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s waitpid|wait|wait3|wait4|waitid shim|noshim [fork|vfork|clone|_Fork]\n", argv[0]);
        return 2;
    }
    const char *how = argv[1];
    int shim = strcmp(argv[2], "shim") == 0;
    const char *maker = argc == 4 ? argv[3] : "fork";

    for (int i = 0; i < N; i++) {
        pids[i] = make_child(maker, i);
        CHECK(pids[i] > 0);
    }

    if (shim) {
        /* The shim reaps them although the program never waits. */
        WAIT_UNTIL(ctest_children() == 0, 5000);
        CHECK(ctest_children() == 0);
        CHECK(ctest_zombies() == 0);
        ctest_sleep_ms(50);
        CHECK(ctest_zombies() == 0);
    } else {
        WAIT_UNTIL(ctest_zombies() == N, 5000);
        CHECK(ctest_zombies() == N);
    }
    printf("zombies before waiting: %d\n", ctest_zombies());

    int got[N] = {0};
    if (strcmp(how, "waitpid") == 0) {
        for (int i = 0; i < N; i++) {
            int st = -1;
            /* half blocking, half WNOHANG: both see the exit */
            CHECK(waitpid(pids[i], &st, i % 2 ? WNOHANG : 0) == pids[i]);
            CHECK(expected_status_ok(i, st));
            got[i]++;
            CHECK_ERR(waitpid(pids[i], &st, 0), ECHILD);
        }
    } else if (strcmp(how, "wait") == 0 || strcmp(how, "wait3") == 0) {
        for (int k = 0; k < N; k++) {
            int st = -1;
            struct rusage ru;
            pid_t p = how[4] == '3' ? wait3(&st, 0, &ru) : wait(&st);
            int i = index_of(p);
            CHECK(i >= 0);
            if (i >= 0) {
                CHECK(expected_status_ok(i, st));
                got[i]++;
            }
        }
        int st;
        struct rusage ru;
        if (how[4] == '3')
            CHECK_ERR(wait3(&st, WNOHANG, &ru), ECHILD);
        else
            CHECK_ERR(wait(&st), ECHILD);
    } else if (strcmp(how, "wait4") == 0) {
        for (int i = 0; i < N; i++) {
            int st = -1;
            struct rusage ru;
            CHECK(wait4(pids[i], &st, 0, &ru) == pids[i]);
            CHECK(expected_status_ok(i, st));
            got[i]++;
            CHECK_ERR(wait4(pids[i], &st, WNOHANG, &ru), ECHILD);
        }
    } else if (strcmp(how, "waitid") == 0) {
        /* first half by P_PID (a WNOWAIT peek first), the rest by P_ALL */
        for (int i = 0; i < N / 2; i++) {
            siginfo_t info;
            memset(&info, 0, sizeof info);
            CHECK(waitid(P_PID, (id_t)pids[i], &info, WEXITED | WNOWAIT) == 0);
            CHECK(info.si_pid == pids[i]);
            memset(&info, 0, sizeof info);
            CHECK(waitid(P_PID, (id_t)pids[i], &info, WEXITED) == 0);
            CHECK(info.si_pid == pids[i]);
            CHECK(info.si_code == CLD_EXITED && info.si_status == 10 + i);
            got[i]++;
            CHECK_ERR(waitid(P_PID, (id_t)pids[i], &info, WEXITED), ECHILD);
        }
        for (int k = N / 2; k < N; k++) {
            siginfo_t info;
            memset(&info, 0, sizeof info);
            CHECK(waitid(P_ALL, 0, &info, WEXITED) == 0);
            int i = index_of(info.si_pid);
            CHECK(i >= N / 2);
            if (i >= N / 2) {
                if (i == N - 1)
                    CHECK(info.si_code == CLD_KILLED && info.si_status == SIGTERM);
                else
                    CHECK(info.si_code == CLD_EXITED && info.si_status == 10 + i);
                got[i]++;
            }
        }
        siginfo_t info;
        CHECK_ERR(waitid(P_ALL, 0, &info, WEXITED | WNOHANG), ECHILD);
    } else {
        fprintf(stderr, "unknown wait call %s\n", how);
        return 2;
    }
    for (int i = 0; i < N; i++) {
        if (got[i] != 1) fprintf(stderr, "child %d (pid %d): status returned %d times\n", i, (int)pids[i], got[i]);
        CHECK(got[i] == 1);
    }
    CHECK(ctest_children() == 0);
    return ctest_finish("shim_never_reaps");
}
