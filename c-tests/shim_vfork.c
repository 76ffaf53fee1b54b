/* shim_vfork.c: a vfork child runs in its parent's memory until it execs.
 * Python's _posixsubprocess and gdb reset SIGCHLD to SIG_DFL there; that must
 * not change the parent: its SIGCHLD handler still runs for its next child,
 * and sigaction still reports it. The parent vforks a child that resets
 * SIGCHLD and execs /bin/true, then forks one that exits 5; the handler
 * reaps with waitpid(-1, WNOHANG) and records what it got. */
#include "ctest.h"

static volatile sig_atomic_t reaped_pid, reaped_status;

static void on_chld(int sig) {
    (void)sig;
    int saved = errno, st;
    pid_t got;
    while ((got = waitpid(-1, &st, WNOHANG)) > 0) {
        reaped_pid = got;
        reaped_status = st;
    }
    errno = saved;
}

int main(void) {
    ctest_start();
    alarm(20);
    struct sigaction act = {0}, dfl = {0}, now = {0};
    act.sa_handler = on_chld;
    act.sa_flags = SA_RESTART;
    dfl.sa_handler = SIG_DFL;
    CHECK(sigaction(SIGCHLD, &act, NULL) == 0);

    pid_t v = vfork();
    if (v == 0) {
        sigaction(SIGCHLD, &dfl, NULL);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    CHECK(v > 0);
    for (int i = 0; i < 500 && reaped_pid != v; i++) ctest_sleep_ms(10);
    CHECK(reaped_pid == v);

    CHECK(sigaction(SIGCHLD, NULL, &now) == 0);
    CHECK(now.sa_handler == on_chld);

    pid_t child = fork();
    if (child == 0) _exit(5);
    CHECK(child > 0);
    for (int i = 0; i < 500 && reaped_pid != child; i++) ctest_sleep_ms(10);
    CHECK(reaped_pid == child);
    CHECK(WIFEXITED(reaped_status) && WEXITSTATUS(reaped_status) == 5);
    CHECK(ctest_children() == 0);
    return ctest_finish("shim_vfork");
}
