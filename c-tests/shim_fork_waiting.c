/* shim_fork_waiting.c: the program forks while another thread blocks in a
 * wait for a process group. The forked child has one thread, so nothing
 * waits in it: under ZREAP_REAP=all (argv[1] = "shim") its own child, which
 * it never waits for, must still be reaped; without the shim ("noshim") that
 * child stays a zombie. */
#include "ctest.h"
#include <pthread.h>

static pid_t sleeper;

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
        int zombies = 1;
        /* Up to 3 s for the shim to reap it; 0.5 s to see it stay a zombie. */
        for (int i = 0; i < (shim ? 300 : 50) && zombies != 0; i++) {
            ctest_sleep_ms(10);
            zombies = ctest_zombies();
        }
        int as_expected = zombies == (shim ? 0 : 1);
        waitpid(unwaited, NULL, 0); /* from the shim's store, or the zombie */
        _exit(as_expected ? 0 : 1);
    }
    CHECK(forked > 0);
    int st = 0;
    CHECK(waitpid(forked, &st, 0) == forked);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (WEXITSTATUS(st) != 0) fprintf(stderr, "the forked child's child: reaped %s\n", shim ? "no" : "yes");

    kill(sleeper, SIGKILL);
    void *got;
    CHECK(pthread_join(thread, &got) == 0);
    CHECK((pid_t)(long)got == sleeper);
    return ctest_finish("shim_fork_waiting");
}
