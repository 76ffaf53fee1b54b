/* Proves: pdeathsig of zspawn() follows the life of the process, not of the
 * calling thread (API.md). P zspawns C (sleep 100, pdeathsig SIGKILL), then
 * the thread that spawned C ends while P lives on: either a short-lived
 * worker thread (joined), or P's MAIN thread (pthread_exit, another thread
 * keeps P alive). C must stay alive (checked again and again for 500 ms)
 * while P lives, and must be killed when P exits.
 * A last round does the worker case after T itself has spawned with a
 * pdeathsig from a worker thread before forking P (so P is a plain-fork copy
 * of a process whose library already had its spawning machinery running: it
 * must work in P too). T (this test) is a subreaper, so C is reparented to T
 * and reaped here. */
#include "ctest_tree.h"

#include <pthread.h>

static int pidp[2], gop[2];

static pid_t spawn_c(void) {
    zspawn_options o;
    zspawn_options_init(&o);
    o.pdeathsig = SIGKILL;
    char *const argv[] = {"sleep", "100", NULL};
    return zspawn("/bin/sleep", argv, NULL, &o);
}

static void send_pid(pid_t c) {
    int msg[2] = {(int)c, errno};
    if (write(pidp[1], msg, sizeof msg) != (ssize_t)sizeof msg) _exit(3);
}

static void wait_go_and_exit(void) {
    char b;
    if (read(gop[0], &b, 1) < 0) _exit(4);
    _exit(0);
}

static void *worker_spawn(void *arg) {
    *(pid_t *)arg = spawn_c();
    return NULL;
}

static void *worker_wait(void *arg) {
    (void)arg;
    wait_go_and_exit();
    return NULL;
}

/* In P: the spawning thread is a worker that ends. */
static void p_spawn_from_worker(void) {
    pid_t c = -1;
    pthread_t t;
    if (pthread_create(&t, NULL, worker_spawn, &c) != 0) _exit(5);
    if (pthread_join(t, NULL) != 0) _exit(6);
    send_pid(c); /* the spawning thread is gone now */
    wait_go_and_exit();
}

/* In P: the spawning thread is the main thread, which ends. */
static void p_spawn_then_end_main_thread(void) {
    pid_t c = spawn_c();
    pthread_t t;
    if (pthread_create(&t, NULL, worker_wait, NULL) != 0) _exit(5);
    send_pid(c);
    pthread_exit(NULL); /* the main thread ends; P lives on in worker_wait */
}

static void one_round(int round, void (*in_p)(void)) {
    CHECK(pipe2(pidp, O_CLOEXEC) == 0 && pipe2(gop, O_CLOEXEC) == 0);
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        close(pidp[0]);
        close(gop[1]);
        in_p();
        _exit(7);
    }
    close(pidp[1]);
    close(gop[0]);
    int msg[2] = {-1, 0};
    CHECK(read_full(pidp[0], msg, sizeof msg, 10000) == 0);
    pid_t c = msg[0];
    if (c <= 0) fprintf(stderr, "round %d: zspawn in P failed: %s\n", round, strerror(msg[1]));
    CHECK(c > 0);

    if (c > 0) {
        /* The thread that called zspawn is gone; P is alive: C must live. */
        int dead_at = -1;
        for (int ms = 0; ms <= 500 && dead_at < 0; ms += 10) {
            char state = '?';
            pid_t ppid = -1;
            if (kill(c, 0) != 0 || ctest_proc_stat(c, &state, &ppid) != 0 || state == 'Z')
                dead_at = ms;
            else
                ctest_sleep_ms(10);
        }
        if (dead_at >= 0)
            fprintf(stderr,
                    "round %d: C died %d ms after the thread that spawned it ended, while P was alive\n",
                    round, dead_at);
        CHECK(dead_at < 0);
    }

    /* Now P exits: C must be killed. */
    CHECK(write(gop[1], "x", 1) == 1);
    close(gop[1]);
    int st = -1;
    CHECK(wait_exit(p, &st, 10000) == 1);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    if (c > 0) {
        st = -1;
        int r = wait_exit(c, &st, 10000);
        if (r == -1) fprintf(stderr, "round %d: C is not our child (already reaped by P?)\n", round);
        if (r == 0) fprintf(stderr, "round %d: C still running 10 s after P exited\n", round);
        if (r == 1 && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            char d[128];
            describe_status(d, sizeof d, st);
            fprintf(stderr, "round %d: C %s, want SIGKILL\n", round, d);
        }
        CHECK(r == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
    close(pidp[0]);
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
    one_round(1, p_spawn_from_worker);
    one_round(2, p_spawn_then_end_main_thread);

    /* T spawns from a worker thread with a pdeathsig, then round 2 forks P. */
    pid_t warm = -1;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker_spawn, &warm) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(warm > 0);
    if (warm > 0) {
        CHECK(kill(warm, SIGKILL) == 0);
        int st = -1;
        CHECK(zwait(warm, &st, 0) == warm && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
    one_round(3, p_spawn_from_worker);
    CHECK(kill_leftovers() == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("pdeath_spawn_thread");
}
