/* A child parked under zreap_install(0) whose pid is given to a plain fork()
 * child after zreap_uninstall(): zreap never takes that new child for the
 * tracked one. Runs in a pid namespace of its own (ctest_pid.h), where the
 * next pid can be forced.
 *
 * Each round: T is made by zfork() under zreap_install(0); zreap_uninstall();
 * T exits and the program calls waitpid(T) itself (it may win against the
 * keeper, which watches T again after the uninstall, or find T reaped);
 * a plain fork() child U gets T's pid; zreap_install(ZREAP_OWN). U is not in
 * that scope: the program's waitpid(U) gets U's status, and zwait(T) returns
 * T's own status or ECHILD, never U's. In round 0 U exits after the install,
 * in round 1 before it. Before zreap_uninstall() handed parked children to
 * the keeper, round 0 failed: the first pass after the install read T's
 * spent registration, found U running under the pid, and watched "T" by pid
 * from then on, so it reaped U. */
#include "ctest_pid.h"

static void wait_for_pipe(int fd) {
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR) {
    }
}

static void round_of(int u_exits_first) {
    int gate_t[2], gate_u[2];
    CHECK(pipe2(gate_t, O_CLOEXEC) == 0 && pipe2(gate_u, O_CLOEXEC) == 0);
    CHECK(zreap_install(0) == 0);
    pid_t t = zfork(NULL);
    if (t == 0) {
        close(gate_t[1]);
        wait_for_pipe(gate_t[0]);
        _exit(7);
    }
    CHECK(t > 0);
    close(gate_t[0]);
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
    CHECK(zreap_all(NULL, NULL) >= 0);
    st = -1;
    CHECK(waitpid(u, &st, 0) == u && WIFEXITED(st) && WEXITSTATUS(st) == 77);
    st = -1;
    if (stolen == t) {
        CHECK_ERR(zwait(t, &st, WNOHANG), ECHILD);
    } else {
        CHECK(zwait(t, &st, WNOHANG) == t && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    }
    printf("round %d: T=%d %s by the program's waitpid; U got its own status\n", u_exits_first, t,
           stolen == t ? "taken" : "already reaped by zreap");
    CHECK(zreap_uninstall() == 0);
}

int main(void) {
    ctest_leave_ns_init();
    ctest_start();
    CHECK(ctest_pid_control_open() >= 0);
    round_of(0);
    round_of(1);
    CHECK(ctest_children() == 0);
    return ctest_finish("reaper_parked_pid_reuse");
}
