/* A tracked child that the program takes with its own waitpid(), and whose
 * pid the kernel then gives to a plain fork() child: zreap never takes that
 * new child for the tracked one. Runs in a pid namespace of its own
 * (ctest_pid.h), where the next pid can be forced.
 *
 * after_uninstall: T is made by zfork() under zreap_install(0) (a parked
 * child); zreap_uninstall(); T exits and the program calls waitpid(T) (it
 * may win against the keeper, which watches T again after the uninstall, or
 * find T reaped); U gets T's pid; zreap_install(ZREAP_OWN). U is not in that
 * scope: the program's waitpid(U) gets U's status, and zwait(T) returns T's
 * own status or ECHILD, never U's. U exits after the install, or before it.
 * Before zreap_uninstall() handed parked children to the keeper, the first
 * pass after the install read T's spent registration, found U running under
 * the pid, watched "T" by pid from then on, and so reaped U.
 *
 * taken_remote: T is a remote child (ZREAP_OWN with zreap_fd(), with and
 * without the handler); the program takes it; U gets its pid and exits
 * before zreap_all() reads T's spent registration: zreap_all() reaps
 * nothing, the program's waitpid(U) gets U's status. And taken_parked: the
 * same under zreap_install(0) with SIGCHLD blocked until U has exited; then
 * zwait(T) answers ECHILD once (T's exit was taken), and U's own exit comes
 * next for that pid. Both read the registration's EPOLLHUP (Linux 6.9): the
 * child was reaped, and not by zreap. Before, zreap reaped U as T.
 *
 * taken_kept: T is kept (handed to the keeper by zreap_uninstall(), then
 * zreap_install(0) again); the keeper is held off (SCHED_IDLE, on the CPU the
 * main thread keeps busy) while, with SIGCHLD blocked, the program takes T
 * and U gets its pid and exits; then SIGCHLD is let through. zwait(T) answers
 * ECHILD and U's exit comes as U's. (The keeper still wins the race for T
 * now and then: that try checks T's exit is zreap's, and the test tries
 * again.) The handler's walk once reaped U by pid
 * as the kept child; it now leaves kept children to the keeper, whose pidfd
 * tells them apart. Needs two CPUs. */
#include "ctest_pid.h"

#include <sched.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

static void wait_for_pipe(int fd) {
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR) {
    }
}

static void after_uninstall(int u_exits_first) {
    int gate_t[2], gate_u[2];
    CHECK(pipe2(gate_u, O_CLOEXEC) == 0);
    CHECK(zreap_install(0) == 0);
    pid_t t = ctest_zfork_gated(gate_t, 7);
    CHECK(zreap_uninstall() == 0);
    close(gate_t[1]);
    int st = -1;
    pid_t stolen = waitpid(t, &st, 0);
    CHECK(stolen == t ? WIFEXITED(st) && WEXITSTATUS(st) == 7 : errno == ECHILD);
    WAIT_UNTIL(ctest_zombies() == 0, 5000);
    CHECK(ctest_next_pid_is(t) == 0);
    pid_t u = fork();
    if (u == 0) {
        close(gate_u[1]);
        wait_for_pipe(gate_u[0]);
        _exit(77);
    }
    close(gate_u[0]);
    CHECK(u == t);
    if (u_exits_first) {
        close(gate_u[1]);
        WAIT_UNTIL(ctest_zombies() == 1, 5000);
    }
    CHECK(zreap_install(ZREAP_OWN) == 0);
    if (!u_exits_first) close(gate_u[1]);
    /* Let the library's passes and keeper see whatever they would. */
    ctest_sleep_ms(200);
    st = -1;
    CHECK(waitpid(u, &st, 0) == u && WIFEXITED(st) && WEXITSTATUS(st) == 77);
    st = -1;
    if (stolen == t) {
        CHECK_ERR(zwait(t, &st, WNOHANG), ECHILD);
    } else {
        CHECK(zwait(t, &st, WNOHANG) == t && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    }
    CHECK(zreap_all(NULL, NULL) == 0);
    CHECK(zreap_uninstall() == 0);
}

/* The program takes T itself; a plain child U gets T's pid and exits.
 * Returns U. */
static pid_t take_and_reuse(pid_t t, int gate_write) {
    close(gate_write);
    int st = -1;
    CHECK(waitpid(t, &st, 0) == t && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK(ctest_next_pid_is(t) == 0);
    pid_t u = fork();
    if (u == 0) _exit(77);
    CHECK(u == t);
    WAIT_UNTIL(ctest_zombies() == 1, 5000);
    return u;
}

static void taken_remote(unsigned flags) {
    CHECK(zreap_install(flags) == 0);
    CHECK(zreap_fd() >= 0);
    int gate[2];
    pid_t t = ctest_zfork_gated(gate, 7);
    pid_t u = take_and_reuse(t, gate[1]);
    CHECK(zreap_all(NULL, NULL) == 0);
    CHECK_ERR(zwait(t, NULL, WNOHANG), ECHILD);
    int st = -1;
    CHECK(waitpid(u, &st, WNOHANG) == u && WIFEXITED(st) && WEXITSTATUS(st) == 77);
    CHECK(zreap_uninstall() == 0);
}

static void taken_parked(void) {
    CHECK(zreap_install(0) == 0);
    int gate[2];
    pid_t t = ctest_zfork_gated(gate, 7);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, &old) == 0);
    pid_t u = take_and_reuse(t, gate[1]);
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    CHECK_ERR(zwait(t, NULL, 0), ECHILD);
    int st = -1;
    CHECK(zwait(u, &st, 0) == u && WIFEXITED(st) && WEXITSTATUS(st) == 77);
    CHECK(zreap_uninstall() == 0);
}

static void run_on_cpu(pid_t tid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    CHECK(sched_setaffinity(tid, sizeof set, &set) == 0);
}

/* Every other thread of this process (the library's) to CPU 0 at the lowest
 * priority there is: it runs only when the main thread, also on CPU 0, sleeps. */
static void hold_other_threads_off(void) {
    DIR *dir = opendir("/proc/self/task");
    CHECK(dir != NULL);
    if (!dir) return;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        pid_t tid = (pid_t)atoi(entry->d_name);
        if (tid <= 0 || tid == (pid_t)syscall(SYS_gettid)) continue;
        run_on_cpu(tid, 0);
        struct sched_param param = {0};
        CHECK(sched_setscheduler(tid, SCHED_IDLE, &param) == 0);
    }
    closedir(dir);
}

/* One try; false when the keeper, though held off, reaped T before the
 * program could take it (then T's exit is zreap's to report). */
static int taken_kept_once(void) {
    CHECK(zreap_install(0) == 0);
    int gate[2];
    pid_t t = ctest_zfork_gated(gate, 7);
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(0) == 0);
    ctest_sleep_ms(100);
    hold_other_threads_off();
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, &old) == 0);
    close(gate[1]);
    int st = -1;
    pid_t taken;
    /* Busy, so that the held-off threads do not run meanwhile. */
    while ((taken = waitpid(t, &st, WNOHANG)) == 0) {
    }
    if (taken != t) {
        CHECK(errno == ECHILD && sigprocmask(SIG_SETMASK, &old, NULL) == 0);
        CHECK(zwait(t, &st, 0) == t && WIFEXITED(st) && WEXITSTATUS(st) == 7);
        CHECK(zreap_uninstall() == 0);
        return 0;
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK(ctest_next_pid_is(t) == 0);
    pid_t u = fork();
    if (u == 0) _exit(77);
    CHECK(u == t);
    siginfo_t info;
    do {
        memset(&info, 0, sizeof info);
    } while (waitid(P_PID, (id_t)u, &info, WEXITED | WNOWAIT | WNOHANG) == 0 && info.si_pid == 0);
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    CHECK_ERR(zwait(t, NULL, 0), ECHILD);
    st = -1;
    CHECK(zwait(u, &st, 0) == u && WIFEXITED(st) && WEXITSTATUS(st) == 77);
    CHECK(zreap_uninstall() == 0);
    return 1;
}

static void taken_kept(void) {
    run_on_cpu(0, 0);
    int tries = 1;
    while (!taken_kept_once() && tries < 20) tries++;
    printf("taken_kept: the program took T first in try %d\n", tries);
}

/* Whether a pidfd reports EPOLLHUP once its process is reaped (Linux 6.9). */
static int kernel_reports_reaped(void) {
    struct utsname u;
    int major = 0, minor = 0;
    return uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
           (major > 6 || (major == 6 && minor >= 9));
}

int main(void) {
    ctest_leave_ns_init();
    ctest_start();
    CHECK(ctest_pid_control_open() >= 0);
    after_uninstall(0);
    after_uninstall(1);
    if (kernel_reports_reaped()) {
        taken_remote(ZREAP_OWN);
        taken_remote(ZREAP_OWN | ZREAP_NO_HANDLER);
        taken_parked();
    } else {
        printf("taken_remote, taken_parked: skipped (pidfds report no EPOLLHUP before Linux 6.9)\n");
    }
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
        taken_kept();
    } else {
        printf("taken_kept: skipped (one CPU)\n");
    }
    CHECK(ctest_children() == 0);
    return ctest_finish("reaper_parked_pid_reuse");
}
