/* Blocking zwait() from many threads at once, in three scopes (nothing
 * installed, zreap_install(0), zreap_install(ZREAP_OWN)). A blocking wait for
 * a tracked child reaps it itself (it claims the child from the library's
 * keeper thread); this program tries to make that go wrong:
 * - 100 threads each block in zwait() on their own child (more waits than
 *   the library has claim cells, so some wait the other way), all released at
 *   once: each gets its own child's status;
 * - two threads block in zwait(pid) on the same child and a third in
 *   zwait(-1): exactly one of them gets the exit, the others ECHILD;
 * - a thread blocks in zwait(pid) while the main thread calls a foreign
 *   waitpid(pid): exactly one gets the status, the other ECHILD, no hang.
 * After each part: no zombie, stats.tracked back to 0. */
#include "ctest.h"
#include <pthread.h>

#define THREADS 100
#define ROUNDS 20

/* A zfork() child that exits with `code` once pipe p's write end is closed. */
static pid_t start_child(int code, const int p[2]) {
    pid_t pid = zfork(NULL);
    if (pid == 0) {
        char c;
        close(p[1]);
        (void)!read(p[0], &c, 1);
        _exit(code);
    }
    CHECK(pid > 0);
    return pid;
}

struct waiter {
    pid_t pid; /* -1: any child */
    pid_t got;
    int status;
    int err;
};

static void *wait_thread(void *arg) {
    struct waiter *w = arg;
    w->status = -1;
    errno = 0;
    w->got = zwait(w->pid, &w->status, 0);
    w->err = errno;
    return NULL;
}

static void check_clean(void) {
    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0 && s.tracked == 0);
    CHECK(ctest_zombies() == 0);
}

static void many_waiters(void) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    static struct waiter w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct waiter){.pid = start_child(i, p)};
        CHECK(pthread_create(&t[i], NULL, wait_thread, &w[i]) == 0);
    }
    close(p[0]);
    ctest_sleep_ms(100); /* let the waits block */
    close(p[1]);
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(w[i].got == w[i].pid);
        CHECK(WIFEXITED(w[i].status) && WEXITSTATUS(w[i].status) == i);
    }
    check_clean();
}

static void same_child(void) {
    int winners = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid_t pid = start_child(7, p);
        close(p[0]);
        struct waiter w[3] = {{.pid = pid}, {.pid = pid}, {.pid = -1}};
        pthread_t t[3];
        for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, wait_thread, &w[i]) == 0);
        ctest_sleep_ms(round % 2 ? 20 : 0);
        close(p[1]);
        int got = 0;
        for (int i = 0; i < 3; i++) {
            CHECK(pthread_join(t[i], NULL) == 0);
            if (w[i].got == pid) {
                got++;
                CHECK(WIFEXITED(w[i].status) && WEXITSTATUS(w[i].status) == 7);
            } else {
                CHECK(w[i].got == -1 && w[i].err == ECHILD);
            }
        }
        CHECK(got == 1);
        winners += got;
        check_clean();
    }
    CHECK(winners == ROUNDS);
}

static void foreign_waitpid(void) {
    int foreign = 0, library = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid_t pid = start_child(9, p);
        close(p[0]);
        struct waiter w = {.pid = pid};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, wait_thread, &w) == 0);
        ctest_sleep_ms(round % 2 ? 20 : 0);
        close(p[1]);
        int st = -1;
        pid_t got = waitpid(pid, &st, 0);
        CHECK(pthread_join(t, NULL) == 0);
        if (got == pid) {
            foreign++;
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9);
            CHECK(w.got == -1 && w.err == ECHILD);
        } else {
            library++;
            CHECK(got == -1 && errno == ECHILD);
            CHECK(w.got == pid && WIFEXITED(w.status) && WEXITSTATUS(w.status) == 9);
        }
        check_clean();
    }
    fprintf(stderr, "  foreign waitpid won %d, zwait %d\n", foreign, library);
}

static void run(const char *scope) {
    fprintf(stderr, "scope %s\n", scope);
    many_waiters();
    same_child();
    foreign_waitpid();
}

int main(void) {
    ctest_start();
    run("none");
    CHECK(zreap_install(0) == 0);
    run("all");
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN) == 0);
    run("own");
    return ctest_finish("reaper_zwait_threads");
}
