/* shim_ignored.c: SIGCHLD set to SIG_IGN, or a handler with SA_NOCLDWAIT:
 * the kernel reaps the children itself (no zombie ever), and wait() fails
 * with ECHILD once they are gone. The shim must leave this to the kernel.
 *
 * Usage: shim_ignored ign | nocldwait
 * The output does not depend on pids or timing. */
#include "ctest.h"

#define N 5

static volatile sig_atomic_t calls;

static void on_chld(int sig) {
    (void)sig;
    calls++;
}

int main(int argc, char **argv) {
    ctest_start();
    int nocldwait = argc > 1 && strcmp(argv[1], "nocldwait") == 0;
    if (nocldwait) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_chld;
        sa.sa_flags = SA_NOCLDWAIT | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
        struct sigaction old;
        CHECK(sigaction(SIGCHLD, NULL, &old) == 0);
        CHECK(old.sa_handler == on_chld && (old.sa_flags & SA_NOCLDWAIT));
    } else {
        CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
        struct sigaction old;
        CHECK(sigaction(SIGCHLD, NULL, &old) == 0);
        CHECK(old.sa_handler == SIG_IGN);
    }
    for (int i = 0; i < N; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            ctest_sleep_ms(20 * i);
            _exit(i);
        }
        CHECK(pid > 0);
    }
    int max_zombies = 0;
    for (int t = 0; t < 400 && ctest_children() > 0; t++) {
        int z = ctest_zombies();
        if (z > max_zombies) max_zombies = z;
        ctest_sleep_ms(5);
    }
    printf("children left %d, zombies seen %d\n", ctest_children(), max_zombies);
    CHECK(max_zombies == 0);
    int st;
    errno = 0;
    pid_t got = wait(&st);
    printf("wait: %d %s\n", (int)got, got == -1 && errno == ECHILD ? "ECHILD" : "?");
    CHECK(got == -1 && errno == ECHILD);
    if (nocldwait) {
        WAIT_UNTIL(calls >= 1, 2000);
        printf("handler ran: %s\n", calls >= 1 ? "yes" : "no");
    }
    return ctest_finish("shim_ignored");
}
