/* A tracked child whose status a foreign waitpid() took: zwait() on it fails
 * with ECHILD (it does not hang or spin), in every scope, and the library
 * forgets it (stats.tracked back to 0). */
#include "ctest.h"

static void steal_then_zwait(const char *scope) {
    /* The child waits on a pipe, so it is alive while zspawn tracks it. */
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    char *argv[] = {"sh", "-c", "read x", NULL};
    zspawn_options opts;
    zspawn_options_init(&opts);
    opts.stdin_fd = p[0];
    pid_t pid = zspawn("/bin/sh", argv, NULL, &opts);
    CHECK(pid > 0);
    close(p[0]);
    int st = -1;
    /* SIGCHLD blocked (the only thread that takes signals), so an installed
     * handler cannot take the child first: the foreign waitpid does. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    close(p[1]);
    CHECK(waitpid(pid, &st, 0) == pid);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    CHECK_ERR(zwait(pid, &st, 0), ECHILD);
    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0 && s.tracked == 0);
    if (s.tracked) fprintf(stderr, "  scope %s: tracked %llu\n", scope, (unsigned long long)s.tracked);
}

int main(void) {
    ctest_start();
    alarm(30);
    steal_then_zwait("none");
    CHECK(zreap_install(0) == 0);
    steal_then_zwait("all");
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN) == 0);
    steal_then_zwait("own");
    return ctest_finish("reaper_stolen");
}
