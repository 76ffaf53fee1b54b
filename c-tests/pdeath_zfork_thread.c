/* Proves the documented zfork() semantics for threads: pdeathsig of a
 * zfork()ed child follows the THREAD that called zfork() (kernel
 * PR_SET_PDEATHSIG). A worker thread zforks C (pdeathsig SIGKILL; C only
 * pause()s); while the worker lives C stays alive; when the worker thread
 * exits, C gets SIGKILL although this process lives on. C stays our child,
 * so zwait() collects it (it is tracked). Also: a zfork() from the main
 * thread with a pdeathsig is not disturbed by another thread's exit. */
#include "ctest_tree.h"

#include <poll.h>
#include <pthread.h>


static int ready[2], go[2];

static void *worker(void *arg) {
    (void)arg;
    zspawn_options o;
    zspawn_options_init(&o);
    o.pdeathsig = SIGKILL;
    pid_t c = zfork(&o);
    if (c == 0) {
        for (;;) pause();
    }
    int msg[2] = {(int)c, errno};
    if (write(ready[1], msg, sizeof msg) != (ssize_t)sizeof msg) return NULL;
    char b;
    ssize_t r = read(go[0], &b, 1); /* stay alive until told to end */
    (void)r;
    return NULL;
}

static void *idle_thread(void *arg) {
    (void)arg;
    return NULL;
}

/* 1 if c is alive (not a zombie) and not yet delivered. */
static int alive(pid_t c) {
    char state = '?';
    pid_t ppid = -1;
    int st;
    return kill(c, 0) == 0 && ctest_proc_stat(c, &state, &ppid) == 0 && state != 'Z' &&
           zwait(c, &st, WNOHANG) == 0;
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;
    (void)wait_exit;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    CHECK(pipe2(ready, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0);

    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
    int msg[2] = {-1, 0};
    CHECK(read_full(ready[0], msg, sizeof msg, 10000) == 0);
    pid_t c = msg[0];
    if (c <= 0) fprintf(stderr, "zfork in the worker failed: %s\n", strerror(msg[1]));
    CHECK(c > 0);

    if (c > 0) {
        /* While the worker thread lives, C lives. */
        int dead_at = -1;
        for (int ms = 0; ms <= 300 && dead_at < 0; ms += 10) {
            if (!alive(c)) dead_at = ms;
            else ctest_sleep_ms(10);
        }
        if (dead_at >= 0) fprintf(stderr, "C died after %d ms while the worker thread lived\n", dead_at);
        CHECK(dead_at < 0);
    }

    /* The worker thread ends; this process goes on. */
    CHECK(write(go[1], "x", 1) == 1);
    CHECK(pthread_join(t, NULL) == 0);

    if (c > 0) {
        int st = -1;
        pid_t w = 0;
        WAIT_UNTIL((w = zwait(c, &st, WNOHANG)) != 0, 10000);
        if (w == 0) fprintf(stderr, "C still alive 10 s after the zforking thread exited\n");
        if (w == c && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            char d[128];
            describe_status(d, sizeof d, st);
            fprintf(stderr, "C %s, want SIGKILL\n", d);
        }
        if (w < 0) fprintf(stderr, "zwait(C) failed: %s\n", strerror(errno));
        CHECK(w == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }

    /* Control: zfork from the main thread; another thread coming and going does
     * not fire the child's pdeathsig. */
    zspawn_options o;
    zspawn_options_init(&o);
    o.pdeathsig = SIGKILL;
    pid_t c2 = zfork(&o);
    if (c2 == 0) {
        for (;;) pause();
    }
    CHECK(c2 > 0);
    if (c2 > 0) {
        pthread_t t2;
        CHECK(pthread_create(&t2, NULL, idle_thread, NULL) == 0);
        CHECK(pthread_join(t2, NULL) == 0);
        int dead_at = -1;
        for (int ms = 0; ms <= 200 && dead_at < 0; ms += 10) {
            if (!alive(c2)) dead_at = ms;
            else ctest_sleep_ms(10);
        }
        CHECK(dead_at < 0);
        CHECK(kill(c2, SIGKILL) == 0);
        int st = -1;
        CHECK(zwait(c2, &st, 0) == c2 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }

    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    CHECK(kill_leftovers() == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("pdeath_zfork_thread");
}
