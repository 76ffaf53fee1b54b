/* shim_signalfd.c: SIGCHLD blocked and read from a signalfd; the program
 * reaps with waitpid(-1, WNOHANG) after each read. No handler ever runs.
 * The output does not depend on pids or timing, so it must be the same with
 * and without the shim. */
#include "ctest.h"
#include <poll.h>
#include <sys/signalfd.h>

#define N 8

int main(void) {
    ctest_start();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC);
    CHECK(sfd >= 0);

    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            ctest_sleep_ms(10 * (i % 3));
            _exit(20 + i);
        }
        CHECK(pids[i] > 0);
    }

    int status_of[N];
    int reaped = 0, reads = 0;
    for (int i = 0; i < N; i++) status_of[i] = -1;
    while (reaped < N) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int rc = poll(&p, 1, 5000);
        CHECK(rc == 1);
        if (rc != 1) break;
        struct signalfd_siginfo si;
        CHECK(read(sfd, &si, sizeof si) == (ssize_t)sizeof si);
        CHECK(si.ssi_signo == SIGCHLD);
        reads++;
        int st;
        pid_t p2;
        while ((p2 = waitpid(-1, &st, WNOHANG)) > 0) {
            for (int i = 0; i < N; i++)
                if (pids[i] == p2) {
                    CHECK(status_of[i] == -1);
                    status_of[i] = st;
                }
            reaped++;
        }
    }
    for (int i = 0; i < N; i++) {
        if (status_of[i] != -1 && WIFEXITED(status_of[i]))
            printf("child %d: exit %d\n", i, WEXITSTATUS(status_of[i]));
        else
            printf("child %d: status %#x\n", i, status_of[i]);
    }
    int st;
    CHECK_ERR(waitpid(-1, &st, WNOHANG), ECHILD);
    CHECK(reads >= 1);
    /* SIGCHLD is still blocked (whatever is pending now depends on timing). */
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    printf("reaped %d, zombies %d, sigchld blocked %d\n", reaped, ctest_zombies(), sigismember(&mask, SIGCHLD));
    return ctest_finish("shim_signalfd");
}
