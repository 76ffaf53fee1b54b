/* A tracked child whose status a foreign waitpid() took: zwait() on it fails
 * with ECHILD (it does not hang or spin), in every scope, and the library
 * forgets it (stats.tracked back to 0). */
#include "ctest.h"

static void steal_then_zwait(const char *scope) {
    char *argv[] = {"true", NULL};
    pid_t pid = zspawn("/bin/true", argv, NULL, NULL);
    CHECK(pid > 0);
    int st = -1;
    /* Blocks SIGCHLD so an installed handler cannot take it first. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &block, &old);
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
