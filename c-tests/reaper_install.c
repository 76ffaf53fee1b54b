/* Proves the zreap_install()/zreap_uninstall() rules:
 * - zreap_uninstall() with nothing installed returns 0;
 * - unknown flag bits give -1/EINVAL, also when already installed (checked before EBUSY);
 * - the same flags again return 0, different flags -1/EBUSY;
 * - zreap_uninstall() puts back the exact SIGCHLD sigaction that was there before
 *   (SIG_DFL, or a custom handler with its flags and mask), and that handler works again;
 * - ZREAP_NO_HANDLER leaves the disposition alone; uninstall keeps the subreaper bit;
 * - after uninstall a new install may use other flags;
 * - zreap_version() is "0.1.0". */
#include "ctest.h"

static volatile sig_atomic_t custom_hits;
static void custom_handler(int sig) {
    (void)sig;
    custom_hits++;
}

static struct sigaction current(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigaction(SIGCHLD, NULL, &sa);
    return sa;
}

static void set_custom(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = custom_handler;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
}

/* The SIGCHLD disposition is our custom handler with the flags and mask we gave it. */
static int is_custom(void) {
    struct sigaction sa = current();
    return sa.sa_handler == custom_handler &&
           (sa.sa_flags & (SA_RESTART | SA_NOCLDSTOP | SA_SIGINFO)) == (SA_RESTART | SA_NOCLDSTOP) &&
           sigismember(&sa.sa_mask, SIGUSR1) == 1;
}

static pid_t fork_exit(int code) {
    pid_t pid = fork();
    if (pid == 0) _exit(code);
    CHECK(pid > 0);
    return pid;
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */

    CHECK(zreap_version() != NULL && strcmp(zreap_version(), "0.1.0") == 0);

    /* Nothing installed yet. */
    CHECK(zreap_uninstall() == 0);
    CHECK(current().sa_handler == SIG_DFL);

    /* Unknown bits are rejected before anything happens. */
    CHECK_ERR(zreap_install(0x80), EINVAL);
    CHECK_ERR(zreap_install(~0u), EINVAL);
    CHECK(current().sa_handler == SIG_DFL);

    /* Install over SIG_DFL, uninstall restores SIG_DFL. */
    CHECK(zreap_install(0) == 0);
    struct sigaction inst = current();
    CHECK(inst.sa_handler != SIG_DFL && inst.sa_handler != SIG_IGN);
    CHECK(inst.sa_flags & SA_RESTART);
    CHECK(zreap_uninstall() == 0);
    CHECK(current().sa_handler == SIG_DFL);

    /* Now over a custom handler. */
    set_custom();
    CHECK(is_custom());
    CHECK(zreap_install(0) == 0);
    CHECK(!is_custom());
    CHECK(zreap_install(0) == 0);                /* same flags: idempotent */
    CHECK_ERR(zreap_install(ZREAP_OWN), EBUSY);
    CHECK_ERR(zreap_install(ZREAP_NO_HANDLER), EBUSY);
    CHECK_ERR(zreap_install(ZREAP_SUBREAPER), EBUSY);
    CHECK_ERR(zreap_install(0x80), EINVAL);      /* EINVAL wins over EBUSY */
    CHECK_ERR(zreap_install(ZREAP_OWN | 0x100), EINVAL);
    CHECK_ERR(zreap_install(1u << 31), EINVAL);
    CHECK(zreap_install(0) == 0);                /* still installed with 0 */

    /* The installed handler reaps a plain fork() child. */
    custom_hits = 0;
    fork_exit(0);
    WAIT_UNTIL(ctest_children() == 0, 10000);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);

    /* Uninstall restores the custom handler, flags and mask. */
    CHECK(zreap_uninstall() == 0);
    CHECK(is_custom());
    CHECK(zreap_uninstall() == 0);               /* nothing installed any more */
    CHECK(is_custom());

    /* ... and it is live again: it runs, and nothing reaps the child for us. */
    custom_hits = 0;
    pid_t pid = fork_exit(5);
    WAIT_UNTIL(custom_hits > 0 && ctest_zombies() == 1, 10000);
    CHECK(custom_hits > 0);
    ctest_sleep_ms(200);
    CHECK(ctest_zombies() == 1);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);

    /* Re-install with other flags after uninstall. */
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK(!is_custom());
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK_ERR(zreap_install(0), EBUSY);
    CHECK_ERR(zreap_install(ZREAP_OWN | ZREAP_SUBREAPER), EBUSY);
    CHECK_ERR(zreap_install(ZREAP_OWN | 0x40), EINVAL);
    CHECK(zreap_uninstall() == 0);
    CHECK(is_custom());

    /* ZREAP_NO_HANDLER does not touch the disposition. */
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    CHECK(is_custom());
    CHECK_ERR(zreap_install(0), EBUSY);
    CHECK(zreap_uninstall() == 0);
    CHECK(is_custom());

    /* ZREAP_SUBREAPER: uninstall does not undo the subreaper bit. */
    int sub = -1;
    CHECK(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub == 0);
    CHECK(zreap_install(ZREAP_SUBREAPER) == 0);
    sub = -1;
    CHECK(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub == 1);
    CHECK(zreap_uninstall() == 0);
    CHECK(is_custom());
    sub = -1;
    CHECK(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub == 1);

    CHECK(zreap_uninstall() == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("reaper_install");
}
