/* shim_blocked_wait.c: what a shell does for a foreground job. The program
 * has a SIGCHLD handler, blocks SIGCHLD, starts a child and waits for any
 * child with a blocking wait4(-1), then unblocks. With one thread and SIGCHLD
 * blocked no handler can run during the wait, so under the shim it must be
 * the kernel's own blocking wait (one wait4 per child, counted by the test
 * with strace), not a poll that slept 100 ms per child. Each child sleeps
 * 20 ms, so a poll would find it still running. Prints the statuses and how
 * often the handler ran, which must match a run without the shim. */
#include "ctest.h"

enum { CHILDREN = 10 };

static volatile sig_atomic_t handled;
static void on_chld(int sig) {
    (void)sig;
    handled++;
}

int main(void) {
    ctest_start();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int codes_ok = 0;
    for (int i = 0; i < CHILDREN; i++) {
        CHECK(sigprocmask(SIG_BLOCK, &chld, &old) == 0);
        pid_t c = fork();
        if (c == 0) {
            ctest_sleep_ms(20);
            _exit(i + 1);
        }
        int st;
        pid_t got = wait4(-1, &st, 0, NULL);
        codes_ok += got == c && WIFEXITED(st) && WEXITSTATUS(st) == i + 1;
        CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    }
    printf("%d of %d waits returned their child's status; handler ran %s\n", codes_ok, CHILDREN,
           handled == CHILDREN ? "once per child" : "not once per child");
    CHECK(codes_ok == CHILDREN);
    return ctest_finish("shim_blocked_wait");
}
