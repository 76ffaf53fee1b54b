/* Proves: a child zspawn()ed with a pdeathsig gets it when its parent P is
 * killed (SIGKILL to P: no exit path of P runs at all), with the number asked
 * for (SIGKILL, SIGUSR1), also when P had other threads running and spawned
 * from one of them. T (this test) is a subreaper: C is reparented here. */
#include "ctest_tree.h"

#include <poll.h>
#include <pthread.h>


static int pidp[2];
static int g_sig;

static void spawn_and_report(void) {
    zspawn_options o;
    zspawn_options_init(&o);
    o.pdeathsig = g_sig;
    char *const argv[] = {"sleep", "100", NULL};
    pid_t c = zspawn("/bin/sleep", argv, NULL, &o);
    int msg[2] = {(int)c, errno};
    if (write(pidp[1], msg, sizeof msg) != (ssize_t)sizeof msg) _exit(3);
}

static void *spawner_thread(void *arg) {
    (void)arg;
    spawn_and_report();
    for (;;) pause(); /* this thread stays alive until P is killed */
    return NULL;
}

static void *idle_thread(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void one_round(int sig, int threaded) {
    g_sig = sig;
    CHECK(pipe2(pidp, O_CLOEXEC) == 0);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        close(pidp[0]);
        /* If T dies, P must not linger: */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (threaded) {
            pthread_t t1, t2;
            if (pthread_create(&t1, NULL, idle_thread, NULL) != 0) _exit(5);
            if (pthread_create(&t2, NULL, spawner_thread, NULL) != 0) _exit(5);
        } else {
            spawn_and_report();
        }
        for (;;) pause();
    }
    close(pidp[1]);
    int msg[2] = {-1, 0};
    CHECK(read_full(pidp[0], msg, sizeof msg, 10000) == 0);
    close(pidp[0]);
    pid_t c = msg[0];
    if (c <= 0) fprintf(stderr, "zspawn in P failed: %s\n", strerror(msg[1]));
    CHECK(c > 0);
    if (c > 0) {
        char state = '?';
        pid_t ppid = -1;
        CHECK(ctest_proc_stat(c, &state, &ppid) == 0 && ppid == p && state != 'Z');
    }

    CHECK(kill(p, SIGKILL) == 0);
    int st = -1;
    CHECK(wait_exit(p, &st, 10000) == 1);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    if (c > 0) {
        st = -1;
        int r = wait_exit(c, &st, 10000);
        if (r == 0) fprintf(stderr, "sig %d threaded %d: C alive 10 s after P was killed\n", sig, threaded);
        if (r == -1) fprintf(stderr, "sig %d threaded %d: C is not our child\n", sig, threaded);
        if (r == 1 && !(WIFSIGNALED(st) && WTERMSIG(st) == sig)) {
            char d[128];
            describe_status(d, sizeof d, st);
            fprintf(stderr, "sig %d threaded %d: C %s\n", sig, threaded, d);
        }
        CHECK(r == 1 && WIFSIGNALED(st) && WTERMSIG(st) == sig);
    }
    CHECK(kill_leftovers() == 0);
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    one_round(SIGKILL, 0);
    one_round(SIGUSR1, 0);
    one_round(SIGKILL, 1);
    CHECK(kill_leftovers() == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("pdeath_spawn_killed");
}
