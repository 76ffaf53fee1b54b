/* Page faults a host's own fork() + _exit + waitpid costs while zreap is in
 * use: the parent's (getrusage) and the child's (wait4's rusage), the least
 * of ROUNDS forks each, first with the program's own SA_SIGINFO handler for
 * SIGCHLD (which does nothing) and no zreap, then after
 * zreap_install(ZREAP_OWN) beside a live tracked child, so that every SIGCHLD
 * runs a pass, and with the spawner's fork hook registered.
 *
 * Prints "parent BEFORE AFTER" and "child BEFORE AFTER". Run by
 * capi/tests/fork_faults.rs against the optimized library: what it counts is
 * which pages the library's code and data lie on, which only an optimized
 * build says (unoptimized, every atomic load is a call of its own). */
#include "ctest.h"

#include <sys/resource.h>

#define ROUNDS 40

static void on_sigchld(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    (void)context;
}

/* The least parent and child faults of one fork() + _exit + waitpid. */
static void least_faults(long *parent, long *child) {
    *parent = *child = -1;
    for (int i = 0; i < ROUNDS; i++) {
        struct rusage before, after, of_child;
        getrusage(RUSAGE_SELF, &before);
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        int status;
        pid_t got;
        while ((got = wait4(pid, &status, 0, &of_child)) == -1 && errno == EINTR) {}
        getrusage(RUSAGE_SELF, &after);
        CHECK(got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        long p = after.ru_minflt - before.ru_minflt;
        if (*parent < 0 || p < *parent) *parent = p;
        if (*child < 0 || of_child.ru_minflt < *child) *child = of_child.ru_minflt;
    }
}

int main(void) {
    ctest_start();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigchld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
    long parent_before, child_before;
    least_faults(&parent_before, &child_before);

    CHECK(zreap_install(ZREAP_OWN) == 0);
    int hold[2];
    CHECK(pipe2(hold, O_CLOEXEC) == 0);
    zspawn_options opts;
    zspawn_options_init(&opts);
    opts.stdin_fd = hold[0];
    char *argv[] = {"cat", NULL};
    pid_t tracked = zspawn("/bin/cat", argv, NULL, &opts);
    CHECK(tracked > 0);
    long parent_after, child_after;
    least_faults(&parent_after, &child_after);

    close(hold[1]);
    close(hold[0]);
    int status = -1;
    CHECK(zwait(tracked, &status, 0) == tracked);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("parent %ld %ld\n", parent_before, parent_after);
    printf("child %ld %ld\n", child_before, child_after);
    return ctest_finish("count_fork_faults");
}
