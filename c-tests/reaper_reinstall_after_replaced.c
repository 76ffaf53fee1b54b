/* The program puts its own SIGCHLD disposition in place of zreap's handler, a
 * zfork() child exits meanwhile (its SIGCHLD goes to the program's
 * disposition), and zreap_install() with the same flags puts zreap's handler
 * back: that child is reaped then, with no other exit and no call, in both
 * scopes. Its status stays for zwait(). Each scope runs in a process of its
 * own. (A child made under the handler is parked: only the handler's passes
 * reap it, so the re-install must run one.) */
#include "ctest.h"

static void scenario(unsigned scope) {
    CHECK(zreap_install(scope) == 0);
    int gate[2];
    pid_t child = ctest_zfork_gated(gate, 5);
    CHECK(signal(SIGCHLD, SIG_DFL) != SIG_ERR);
    close(gate[1]);
    WAIT_UNTIL(ctest_is_zombie(child), 10000);
    CHECK(ctest_is_zombie(child)); /* nothing reaps it while the program's disposition is in place */
    CHECK(zreap_install(scope) == 0);
    WAIT_UNTIL(ctest_zombies() == 0, 10000);
    CHECK(ctest_zombies() == 0);
    int st = -1;
    CHECK(zwait(child, &st, WNOHANG) == child && WIFEXITED(st) && WEXITSTATUS(st) == 5);
}

int main(void) {
    ctest_start();
    unsigned scopes[] = {0, ZREAP_OWN};
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            ctest_failures = 0; /* its own */
            scenario(scopes[i]);
            _exit(ctest_failures ? 1 : 0);
        }
        int st = -1;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "scope %u failed\n", scopes[i]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    return ctest_finish("reaper_reinstall_after_replaced");
}
