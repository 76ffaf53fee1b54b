/* shim_wnohang_race.c: a signalfd loop that does what POSIX allows. After
 * each SIGCHLD read from the signalfd it calls waitpid(-1, WNOHANG) (or
 * waitid(P_ALL, WNOHANG)) until that says no child has exited; a long-lived
 * child keeps it from saying ECHILD. Under ZREAP_REAP=all the shim's thread
 * reaps beside it: an exit stored between the shim's look at its store and
 * the kernel's "none exited" was lost, and the loop waited for a SIGCHLD that
 * had already been read (2 s without one with an exit missing counts as
 * lost). Three workers run at once, to make that window come up; each prints
 * its count, which must be 0. Usage: shim_wnohang_race [ROUNDS] */
#include "ctest.h"
#include <poll.h>
#include <sys/signalfd.h>

enum { WORKERS = 3 };

/* One WNOHANG wait: the pid it collected (checking exit code 1), 0, or -1. */
static pid_t collect(int use_waitid, int *bad) {
    if (use_waitid) {
        siginfo_t info = {0};
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0) return -1;
        if (info.si_pid != 0 && (info.si_code != CLD_EXITED || info.si_status != 1)) ++*bad;
        return info.si_pid;
    }
    int st;
    pid_t w = waitpid(-1, &st, WNOHANG);
    if (w > 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 1)) ++*bad;
    return w;
}

static int worker(int rounds, int use_waitid) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) return 2;
    pid_t keeper = fork();
    if (keeper == 0) {
        pause();
        _exit(0);
    }
    int lost = 0, bad = 0;
    for (int r = 0; r < rounds; r++) {
        if (fork() == 0) _exit(1);
        int got = 0;
        while (!got) {
            struct pollfd p = {sfd, POLLIN, 0};
            if (poll(&p, 1, 2000) == 0) {
                lost++;
                while (collect(use_waitid, &bad) > 0) got = 1;
                break;
            }
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si) return 2;
            while (collect(use_waitid, &bad) > 0) got = 1;
        }
    }
    kill(keeper, SIGKILL);
    waitpid(keeper, NULL, 0);
    printf("worker (%s): lost %d of %d rounds, %d wrong statuses\n", use_waitid ? "waitid" : "waitpid", lost,
           rounds, bad);
    return lost || bad;
}

int main(int argc, char **argv) {
    ctest_start();
    int rounds = argc > 1 ? atoi(argv[1]) : 5000;
    pid_t workers[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        workers[i] = fork();
        if (workers[i] == 0) _exit(worker(rounds, i == 1));
        CHECK(workers[i] > 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        int st;
        CHECK(waitpid(workers[i], &st, 0) == workers[i]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK(ctest_children() == 0);
    return ctest_finish("shim_wnohang_race");
}
