/* shim_wait_semantics.c: the wait calls give what the kernel gives, also for
 * children the shim reaped before the program asked (checks that hold with
 * and without the shim). Run as "shim_wait_semantics DISPOSITION", where
 * DISPOSITION is `handler` (a no-op SIGCHLD handler with SA_RESTART: under
 * ZREAP_REAP=handler the shim reaps what the handler leaves) or `default`
 * (under ZREAP_REAP=all the shim's thread reaps). A second argument
 * `no-futex-waitv` refuses that system call (as a kernel before 5.16 or a
 * seccomp filter would): the shim's waits then fall back to a timed sleep,
 * which cannot tell EINTR apart, so the EINTR checks are left out.
 *
 *   options    options the kernel refuses give EINVAL, and leave the exit
 *              for the next wait; waitpid(INT_MIN) gives ESRCH; __WCLONE
 *              never gets an ordinary child.
 *   null info  waitid(P_ALL, 0, NULL, WEXITED) blocks until a child exits,
 *              and reaps it.
 *   eintr      a blocking wait for any child cut by a signal whose handler
 *              has no SA_RESTART fails with EINTR; with SA_RESTART it goes
 *              on and returns the child; and with a SIGCHLD handler without
 *              SA_RESTART, a child's stop (which the wait does not accept)
 *              cuts it with EINTR, also a wait that takes stops
 *              (WUNTRACED); a wait for any child goes on when another
 *              thread sets SIGCHLD back to its default meanwhile.
 *   unannounced  a child becomes waitable with no run of a SIGCHLD
 *              handler, and the wait must still see it: a tracee's ptrace
 *              stop under SA_NOCLDSTOP; a SIGCHLD that another thread took
 *              with sigwait; a one-shot handler's reset while a wait for a
 *              process group sleeps.
 *   rusage     wait4 and wait3 report the CPU time of a child that burnt
 *              some, and SIGCHLD's siginfo does too (si_utime + si_stime).
 */
#include "ctest.h"

#include <limits.h>
#include <pthread.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <time.h>

static void no_op(int sig) { (void)sig; }

static void set_handler(int sig, void (*fn)(int), int flags) {
    struct sigaction sa = {0};
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

/* The SIGCHLD disposition the run asked for. */
static int with_handler;

static void set_sigchld(void) {
    if (with_handler) {
        set_handler(SIGCHLD, no_op, SA_RESTART);
    } else {
        set_handler(SIGCHLD, SIG_DFL, 0);
    }
}

/* Returns once `pid` has exited and, under the shim, been reaped into its
 * store (gone from /proc), which takes the shim's thread up to 20 ms; a
 * zombie left for 300 ms is taken for a run without the shim. */
static void settle(pid_t pid) {
    char state = 0;
    pid_t ppid;
    WAIT_UNTIL(ctest_proc_stat(pid, &state, &ppid) != 0 || state == 'Z', 5000);
    WAIT_UNTIL(ctest_proc_stat(pid, &state, &ppid) != 0, 300);
}

/* A child that has exited with `code` (see settle). */
static pid_t exited_child(int code) {
    pid_t pid = ctest_child_exiting(code);
    settle(pid);
    return pid;
}

/* The next wait for `pid` returns its exit with `code`. */
static void waits_for(pid_t pid, int code) {
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == code);
}

static void options(void) {
    int status;
    siginfo_t info;
    pid_t pid = exited_child(3);
    CHECK_ERR(waitpid(pid, &status, 0x10000), EINVAL);
    CHECK_ERR(waitpid(-1, &status, WNOHANG | 0x10000), EINVAL);
    CHECK_ERR(wait4(pid, &status, WEXITED, NULL), EINVAL); /* a waitid option */
    CHECK_ERR(waitid(P_PID, (id_t)pid, &info, WEXITED | 0x10000), EINVAL);
    CHECK_ERR(waitid(P_ALL, 0, &info, WEXITED | WNOHANG | 0x10000), EINVAL);
    CHECK_ERR(waitid(P_ALL, 0, &info, WNOHANG), EINVAL); /* no state asked for */
    CHECK_ERR(waitpid(INT_MIN, &status, WNOHANG), ESRCH);
    CHECK_ERR(waitpid(-1, &status, __WCLONE | WNOHANG), ECHILD);
    waits_for(pid, 3);
    CHECK_ERR(waitpid(-1, &status, WNOHANG), ECHILD);
}

/* A child that sleeps `ms` milliseconds, then exits with `code`. */
static pid_t sleeping_child(long ms, int code) {
    pid_t pid = fork();
    if (pid == 0) {
        ctest_sleep_ms(ms);
        _exit(code);
    }
    CHECK(pid > 0);
    return pid;
}

static void null_info(void) {
    pid_t pid = sleeping_child(200, 4);
    CHECK(waitid(P_ALL, 0, NULL, WEXITED) == 0);
    /* It reaped the child: nothing is left to wait for. */
    CHECK_ERR(waitpid(pid, NULL, WNOHANG), ECHILD);
}

/* Whether a wait cut by a handler without SA_RESTART fails with EINTR here. */
static int eintr_exact = 1;

static void cut_by_alarm(int restart, int by_waitid, int stops) {
    set_handler(SIGALRM, no_op, restart ? SA_RESTART : 0);
    pid_t pid = sleeping_child(600, 5);
    ualarm(150000, 0);
    int status = -1;
    siginfo_t info;
    errno = 0;
    long got = by_waitid ? (waitid(P_ALL, 0, &info, WEXITED | (stops ? WSTOPPED : 0)) == 0 ? info.si_pid : -1)
                         : waitpid(-1, &status, stops ? WUNTRACED : 0);
    int err = errno;
    if (restart) {
        CHECK(got == pid);
    } else if (!eintr_exact) {
        CHECK(got == pid || (got == -1 && err == EINTR));
        if (got == -1) waits_for(pid, 5);
    } else {
        CHECK(got == -1 && err == EINTR);
        waits_for(pid, 5);
    }
    alarm(CTEST_DEADLINE); /* ualarm took the deadline's timer */
}

static void cut_by_stop(void) {
    set_handler(SIGCHLD, no_op, 0);
    pid_t pid = fork();
    if (pid == 0) {
        ctest_sleep_ms(150);
        raise(SIGSTOP);
        _exit(6);
    }
    CHECK(pid > 0);
    if (eintr_exact) {
        errno = 0;
        CHECK(waitpid(-1, NULL, 0) == -1 && errno == EINTR);
    } else {
        char state = 0;
        pid_t ppid;
        WAIT_UNTIL(ctest_proc_stat(pid, &state, &ppid) == 0 && state == 'T', 5000);
    }
    set_sigchld(); /* the continue below would cut the next wait too */
    CHECK(kill(pid, SIGCONT) == 0);
    waits_for(pid, 6);
}

static void *set_default_soon(void *unused) {
    (void)unused;
    ctest_sleep_ms(150);
    set_handler(SIGCHLD, SIG_DFL, 0);
    return NULL;
}

static void handler_removed(void) {
    set_handler(SIGCHLD, no_op, SA_RESTART);
    pid_t pid = sleeping_child(400, 7);
    pthread_t setter;
    CHECK(pthread_create(&setter, NULL, set_default_soon, NULL) == 0);
    int status = -1;
    CHECK(waitpid(-1, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    CHECK(pthread_join(setter, NULL) == 0);
    set_sigchld();
}

static void eintr(void) {
    for (int by_waitid = 0; by_waitid < 2; by_waitid++) {
        for (int stops = 0; stops < 2; stops++) {
            cut_by_alarm(0, by_waitid, stops);
            cut_by_alarm(1, by_waitid, stops);
        }
    }
    cut_by_stop();
    handler_removed();
}

static void tracee_stop(void) {
    set_handler(SIGCHLD, no_op, SA_RESTART | SA_NOCLDSTOP);
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        ctest_sleep_ms(150);
        raise(SIGSTOP);
        _exit(7);
    }
    CHECK(pid > 0);
    int status = -1;
    CHECK(waitpid(-1, &status, 0) == pid);
    CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP);
    CHECK(ptrace(PTRACE_CONT, pid, NULL, NULL) == 0);
    waits_for(pid, 7);
    set_sigchld();
}

static volatile pid_t sigwaited_child;

static void *fork_then_sigwait(void *unused) {
    (void)unused;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, NULL);
    sigwaited_child = sleeping_child(150, 8);
    int sig = 0;
    sigwait(&chld, &sig);
    return NULL;
}

static void sigwait_thread(void) {
    set_handler(SIGCHLD, no_op, SA_RESTART);
    pthread_t helper;
    sigwaited_child = 0;
    CHECK(pthread_create(&helper, NULL, fork_then_sigwait, NULL) == 0);
    WAIT_UNTIL(sigwaited_child != 0, 5000);
    int status = -1;
    pid_t got = waitpid(-1, &status, 0);
    CHECK(pthread_join(helper, NULL) == 0);
    CHECK(got == sigwaited_child && WIFEXITED(status) && WEXITSTATUS(status) == 8);
    set_sigchld();
}

/* A child in a process group of its own, exiting after `ms`. */
static pid_t grouped_child(long ms, int code) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        ctest_sleep_ms(ms);
        _exit(code);
    }
    CHECK(pid > 0);
    setpgid(pid, pid);
    return pid;
}

static void one_shot_reset(void) {
    set_handler(SIGCHLD, no_op, SA_RESTART | SA_RESETHAND);
    pid_t first = grouped_child(150, 1);
    pid_t second = grouped_child(400, 2);
    int status = -1;
    CHECK(waitpid(-second, &status, 0) == second);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    waits_for(first, 1);
    set_sigchld();
}

static void unannounced(void) {
    tracee_stop();
    sigwait_thread();
    one_shot_reset();
}

static long long cpu_ms(const struct rusage *usage) {
    return (usage->ru_utime.tv_sec + usage->ru_stime.tv_sec) * 1000LL +
           (usage->ru_utime.tv_usec + usage->ru_stime.tv_usec) / 1000;
}

/* A child that burns 150 ms of CPU time, then exits with `code`. */
static pid_t burning_child(int code) {
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec t;
        do {
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        } while (t.tv_sec == 0 && t.tv_nsec < 150000000);
        _exit(code);
    }
    CHECK(pid > 0);
    settle(pid);
    return pid;
}

static volatile sig_atomic_t chld_ticks = -1;

static void note_ticks(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    if (info->si_code == CLD_EXITED) chld_ticks = (sig_atomic_t)(info->si_utime + info->si_stime);
}

static void rusage(void) {
    struct rusage usage;
    int status;
    memset(&usage, 0, sizeof usage);
    pid_t pid = burning_child(7);
    CHECK(wait4(pid, &status, 0, &usage) == pid);
    CHECK(cpu_ms(&usage) >= 100);
    memset(&usage, 0, sizeof usage);
    pid = burning_child(8);
    CHECK(wait3(&status, 0, &usage) == pid);
    CHECK(cpu_ms(&usage) >= 100);
    if (with_handler) {
        struct sigaction sa = {0};
        sa.sa_sigaction = note_ticks;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
        pid = burning_child(9);
        WAIT_UNTIL(chld_ticks != -1, 5000);
        CHECK(chld_ticks * 1000 / sysconf(_SC_CLK_TCK) >= 100);
        waits_for(pid, 9);
        set_sigchld();
    }
}

int main(int argc, char **argv) {
    ctest_start();
    int usage = argc < 2 || argc > 3 || (strcmp(argv[1], "handler") != 0 && strcmp(argv[1], "default") != 0) ||
                (argc == 3 && strcmp(argv[2], "no-futex-waitv") != 0);
    if (usage) {
        fprintf(stderr, "usage: %s handler|default [no-futex-waitv]\n", argv[0]);
        return 2;
    }
    with_handler = strcmp(argv[1], "handler") == 0;
    if (argc == 3) {
        /* The shim always waits on one futex: refuse exactly that. */
        CHECK(ctest_refuse_call(SYS_futex_waitv, 1, 1));
        eintr_exact = 0;
    }
    set_sigchld();
    options();
    null_info();
    eintr();
    unannounced();
    rusage();
    CHECK(ctest_zombies() == 0);
    return ctest_finish("shim_wait_semantics");
}
