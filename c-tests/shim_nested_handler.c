/* shim_nested_handler.c: a handler of another signal that interrupts the
 * shim's SIGCHLD handler in the middle of a reap, and itself calls waitpid or
 * pidfd_send_signal (both async-signal-safe), must not wait for that reap:
 * it cannot end before the handler returns. The shim hung there.
 *
 * Run under ZREAP_REAP=handler: the program has a SIGCHLD handler, so the
 * shim's handler reaps what it leaves. A second process sends SIGUSR1 without
 * pause while this one forks 300 children and reaps half of them; the
 * SIGUSR1 handler asks about a child that is gone. No fork for 5 s is a hang
 * (the flood of signals makes the forks slow, not stop). */
#include "ctest.h"

#include <sys/pidfd.h>

static int gone_fd;
static pid_t gone;
static volatile sig_atomic_t usr1;
static volatile long forks;
static long forks_at_last_alarm = -1;

static void on_chld(int sig) { (void)sig; }

static void on_usr1(int sig) {
    (void)sig;
    int saved = errno;
    waitpid(gone, NULL, WNOHANG);
    pidfd_send_signal(gone_fd, 0, NULL, 0);
    usr1++;
    errno = saved;
}

static void on_alrm(int sig) {
    (void)sig;
    if (forks != forks_at_last_alarm) {
        forks_at_last_alarm = forks;
        alarm(5);
        return;
    }
    static const char msg[] = "shim_nested_handler: no fork for 5 s: hung\n";
    ssize_t unused = write(2, msg, sizeof msg - 1);
    (void)unused;
    _exit(1);
}

int main(void) {
    ctest_start();
    struct sigaction sa = {0};
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_chld;
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    sa.sa_handler = on_alrm;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    gone = fork();
    if (gone == 0) _exit(0);
    gone_fd = pidfd_open(gone, 0);
    CHECK(gone_fd >= 0);
    CHECK(waitpid(gone, NULL, 0) == gone);
    pid_t me = getpid();
    pid_t sender = fork();
    if (sender == 0) {
        while (kill(me, SIGUSR1) == 0) {
        }
        _exit(0);
    }
    alarm(5);
    for (int i = 0; i < 300; i++) {
        pid_t child = fork();
        if (child == 0) _exit(0);
        CHECK(child > 0);
        forks++;
        if (i % 2) waitpid(-1, NULL, WNOHANG);
    }
    alarm(CTEST_DEADLINE);
    CHECK(usr1 > 0);
    kill(sender, SIGKILL);
    CHECK(waitpid(sender, NULL, 0) == sender);
    while (waitpid(-1, NULL, 0) > 0) {
    }
    CHECK(ctest_zombies() == 0);
    return ctest_finish("shim_nested_handler");
}
