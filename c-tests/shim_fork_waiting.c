/* shim_fork_waiting.c: the program forks while another thread blocks in a
 * wait for a process group. The forked child has one thread, so nothing
 * waits in it: under ZREAP_REAP=all (argv[1] = "shim") its own child, which
 * it never waits for, must still be reaped; without the shim ("noshim") that
 * child stays a zombie. */
#include "ctest.h"
#include <pthread.h>

static pid_t sleeper;

/* 'Z' if `pid` is our zombie, 'R' if it is our child still running, 0 if it
 * is gone (reaped). */
static char child_state(pid_t pid) {
    char state;
    pid_t ppid;
    if (ctest_proc_stat(pid, &state, &ppid) != 0 || ppid != getpid()) return 0;
    return state == 'Z' ? 'Z' : 'R';
}

static void *group_waiter(void *arg) {
    (void)arg;
    int st;
    pid_t got;
    while ((got = waitpid(-sleeper, &st, 0)) == -1 && errno == EINTR) {
    }
    return (void *)(long)got;
}

int main(int argc, char **argv) {
    ctest_start();
    alarm(20);
    int shim = argc > 1 && strcmp(argv[1], "shim") == 0;
    sleeper = fork();
    if (sleeper == 0) {
        setpgid(0, 0);
        pause();
        _exit(0);
    }
    CHECK(sleeper > 0);
    setpgid(sleeper, sleeper);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, group_waiter, NULL) == 0);
    ctest_sleep_ms(200); /* the waiter is in its wait */

    pid_t forked = fork();
    if (forked == 0) {
        pid_t unwaited = fork();
        if (unwaited == 0) _exit(0);
        /* Up to 3 s for it to end up as expected: reaped by the shim (gone),
         * or a zombie without it. A child that has not exited yet is neither. */
        char want = shim ? 0 : 'Z', state = child_state(unwaited);
        for (int i = 0; i < 300 && state != want; i++) {
            ctest_sleep_ms(10);
            state = child_state(unwaited);
        }
        int as_expected = state == want;
        waitpid(unwaited, NULL, 0); /* from the shim's store, or the zombie */
        _exit(as_expected ? 0 : 1);
    }
    CHECK(forked > 0);
    int st = 0;
    CHECK(waitpid(forked, &st, 0) == forked);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (WEXITSTATUS(st) != 0) fprintf(stderr, "the forked child's child: %s\n", shim ? "not reaped" : "no zombie");

    kill(sleeper, SIGKILL);
    void *got;
    CHECK(pthread_join(thread, &got) == 0);
    CHECK((pid_t)(long)got == sleeper);
    return ctest_finish("shim_fork_waiting");
}
