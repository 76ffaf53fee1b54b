/* What happens when the program changes SIGCHLD after zreap_install(0):
 * - its own handler replaces zreap's: children are no longer reaped by zreap;
 *   calling zreap_install(0) again returns 0 and puts zreap's handler back;
 * - SIG_IGN: the kernel reaps children itself and their statuses are gone, so
 *   zwait() on a tracked child fails with ECHILD (it does not hang). */
#include "ctest.h"

static volatile sig_atomic_t host_calls;
static void host_handler(int sig) {
    (void)sig;
    host_calls++;
}

static int current_is(void (*fn)(int)) {
    struct sigaction now;
    sigaction(SIGCHLD, NULL, &now);
    return now.sa_handler == fn;
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(0) == 0);
    struct sigaction zreap_action;
    CHECK(sigaction(SIGCHLD, NULL, &zreap_action) == 0);

    signal(SIGCHLD, host_handler);
    pid_t child = fork();
    if (child == 0) _exit(1);
    WAIT_UNTIL(host_calls > 0, 10000);
    char state = 0;
    pid_t ppid;
    CHECK(ctest_proc_stat(child, &state, &ppid) == 0 && state == 'Z'); /* zreap no longer reaps */

    CHECK(zreap_install(0) == 0);
    CHECK(!current_is(host_handler) && current_is(zreap_action.sa_handler));
    CHECK(zreap_all(NULL, NULL) == 1); /* the zombie left behind */
    child = fork();
    if (child == 0) _exit(2);
    WAIT_UNTIL(ctest_proc_stat(child, &state, &ppid) == -1, 10000);
    CHECK(ctest_proc_stat(child, &state, &ppid) == -1); /* reaped by zreap again */
    CHECK(zreap_all(NULL, NULL) == 1);

    /* uninstall puts back what zreap replaced the second time: the host's handler */
    CHECK(zreap_uninstall() == 0);
    CHECK(current_is(host_handler));

    CHECK(zreap_install(ZREAP_OWN) == 0);
    signal(SIGCHLD, SIG_IGN);
    char *argv[] = {"true", NULL};
    pid_t tracked = zspawn("/bin/true", argv, NULL, NULL);
    CHECK(tracked > 0);
    int st;
    CHECK_ERR(zwait(tracked, &st, 0), ECHILD);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_disposition_replaced");
}
