/* Proves zwait() semantics in three modes, each in its own subprocess: nothing
 * installed, zreap_install(0), and zreap_install(ZREAP_OWN):
 * - an exit is delivered exactly once (zwait, then ECHILD; zreap_all() then 0);
 * - a tracked child is reaped as soon as it exits, in every mode (no zombie), and
 *   zwait() still returns its status; a plain fork() child without a handler is
 *   a zombie until zwait() reaps it;
 * - zwait(-1) returns any child, and ECHILD when none is left;
 * - WNOHANG on a live child returns 0; a blocking zwait() returns a signal death
 *   and an exit that happens while it waits;
 * - bad pid (0, -5) or options -> EINVAL; a pid that is not our child -> ECHILD;
 * - a plain fork() child is in scope except with ZREAP_OWN. */
#include "ctest.h"

enum { MODE_NONE, MODE_ALL, MODE_OWN };
static const char *mode_name[] = {"no install", "zreap_install(0)", "zreap_install(ZREAP_OWN)"};

static pid_t spawn_sh(const char *script) {
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    pid_t pid = zspawn("/bin/sh", argv, NULL, NULL);
    CHECK(pid > 0);
    return pid;
}

static void run_mode(int mode) {
    int st;
    if (mode == MODE_ALL) CHECK(zreap_install(0) == 0);
    if (mode == MODE_OWN) CHECK(zreap_install(ZREAP_OWN) == 0);

    /* Exactly once. A tracked child is reaped the moment it exits (by the
     * library's keeper thread), with or without zreap_install(). */
    pid_t pid = spawn_sh("exit 3");
    WAIT_UNTIL(ctest_children() == 0, 10000);
    CHECK(ctest_children() == 0);
    st = -1;
    CHECK(zwait(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    CHECK(ctest_zombies() == 0);
    CHECK_ERR(zwait(pid, &st, 0), ECHILD);
    CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);
    CHECK(zreap_all(NULL, NULL) == 0);

    /* zwait(-1) returns any child; ECHILD when none is left. */
    pid = spawn_sh("exit 5");
    st = -1;
    CHECK(zwait(-1, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    CHECK_ERR(zwait(-1, &st, 0), ECHILD);
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);

    /* WNOHANG on a live child, then a blocking zwait() for a signal death. */
    char *sleep_argv[] = {"sleep", "30", NULL};
    pid = zspawn("/bin/sleep", sleep_argv, NULL, NULL);
    CHECK(pid > 0);
    CHECK(zwait(pid, &st, WNOHANG) == 0);
    CHECK(zwait(-1, &st, WNOHANG) == 0);
    CHECK(kill(pid, SIGKILL) == 0);
    st = -1;
    CHECK(zwait(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);

    /* A blocking zwait() that starts before the child exits. */
    pid = spawn_sh("sleep 0.3; exit 4");
    st = -1;
    CHECK(zwait(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 4);

    /* zfork() children are tracked like zspawn() ones. */
    pid = zfork(NULL);
    if (pid == 0) _exit(9);
    CHECK(pid > 0);
    st = -1;
    CHECK(zwait(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9);

    /* Bad arguments. */
    CHECK_ERR(zwait(0, &st, 0), EINVAL);
    CHECK_ERR(zwait(-5, &st, 0), EINVAL);
    CHECK_ERR(zwait(-1, &st, 0x100), EINVAL);
    CHECK_ERR(zwait(-1, &st, WUNTRACED), EINVAL);
    CHECK_ERR(zwait(getpid(), &st, 0), ECHILD);
    CHECK_ERR(zwait(getpid(), &st, WNOHANG), ECHILD);
    CHECK_ERR(zwait(1, &st, 0), ECHILD);

    /* A plain fork() child: in scope unless ZREAP_OWN. */
    pid = fork();
    if (pid == 0) _exit(11);
    CHECK(pid > 0);
    if (mode == MODE_OWN) {
        WAIT_UNTIL(ctest_zombies() == 1, 10000);
        CHECK(ctest_zombies() == 1);
        CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);
        CHECK_ERR(zwait(pid, &st, 0), ECHILD);
        CHECK(zreap_all(NULL, NULL) == 0);
        CHECK(ctest_zombies() == 1);
        st = -1;
        CHECK(waitpid(pid, &st, 0) == pid);
    } else {
        if (mode == MODE_NONE) {
            /* No library call since fork(): nobody may have reaped it. */
            WAIT_UNTIL(ctest_zombies() == 1, 10000);
            CHECK(ctest_zombies() == 1);
        } else {
            WAIT_UNTIL(ctest_children() == 0, 10000);
            CHECK(ctest_children() == 0); /* the handler reaped it */
        }
        st = -1;
        CHECK(zwait(pid, &st, 0) == pid);
        CHECK(ctest_zombies() == 0);
        CHECK_ERR(zwait(pid, &st, 0), ECHILD);
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 11);

    CHECK(zreap_all(NULL, NULL) == 0);
    CHECK(ctest_children() == 0);
    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.tracked == 0);
    CHECK(s.dropped == 0);
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    for (int mode = MODE_NONE; mode <= MODE_OWN; mode++) {
        pid_t sub = fork();
        if (sub == 0) {
            ctest_failures = 0; /* count this mode's failures only */
            alarm(60);
            run_mode(mode);
            if (ctest_failures) fprintf(stderr, "  ^ in mode %s\n", mode_name[mode]);
            _exit(ctest_failures ? 1 : 0);
        }
        CHECK(sub > 0);
        int st = -1;
        CHECK(waitpid(sub, &st, 0) == sub);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "mode %s: subprocess status 0x%x\n", mode_name[mode], st);
            ctest_failures++;
        }
    }
    CHECK(ctest_children() == 0);
    return ctest_finish("reaper_zwait");
}
