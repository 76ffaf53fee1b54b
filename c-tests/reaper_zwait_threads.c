/* Blocking zwait() from many threads at once, in five scopes (nothing
 * installed, zreap_install(0), zreap_install(ZREAP_OWN), and ZREAP_NO_HANDLER
 * with and without ZREAP_OWN, where zreap_fd() is in use and the program's
 * own calls reap tracked children through it). A blocking wait for a tracked
 * child reaps it itself (it claims the child from the library's keeper
 * thread or from the reap fd's passes); this program tries to make that go
 * wrong:
 * - 100 threads each block in zwait() on their own child (more waits than
 *   the library has claim cells, so some wait the other way), all released at
 *   once: each gets its own child's status;
 * - two threads block in zwait(pid) on the same child and a third in
 *   zwait(-1): exactly one of them gets the exit, the others ECHILD;
 * - a thread blocks in zwait(pid) while the main thread calls a foreign
 *   waitpid(pid): exactly one gets the status, the other ECHILD, no hang.
 * - a thread blocks in zwait(-1) while the main thread's zwait(pid) takes the
 *   last child: the zwait(-1) returns ECHILD at once, as waitpid(-1) would,
 *   not at the library's 1 s backstop (never 900 ms or more later); the same
 *   when a foreign waitpid(pid) takes a plain fork() child (with the
 *   all-children handler such a wait once slept for good).
 * - with zreap_fd() in use: 200 children exit at once and a poll() +
 *   zreap_all() loop reports each exactly once, then the fd is not readable;
 *   a zwait(-1) that blocks before its child exits returns it;
 *   then the parts above again, with a poll() + zreap_all() thread running
 *   beside the waits.
 * - children made under ZREAP_NO_HANDLER with zreap_fd() in use, still
 *   running when the program installs the all-children handler
 *   (zreap_install(0)), are reaped by that handler when they exit; under
 *   ZREAP_OWN with zreap_fd() in use, exits wait for zreap_all(), which the
 *   fd announces.
 * After each part: no zombie, stats.tracked back to 0. */
#include "ctest.h"
#include <poll.h>
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

/* Starts a child that exits with `code` once released, a thread blocked in
 * zwait() for it (into *w), and releases it `delay_ms` later. */
static pid_t start_waited(int code, int delay_ms, struct waiter *w, pthread_t *t) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = start_child(code, p);
    close(p[0]);
    *w = (struct waiter){.pid = pid};
    CHECK(pthread_create(t, NULL, wait_thread, w) == 0);
    ctest_sleep_ms(delay_ms);
    close(p[1]);
    return pid;
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
        struct waiter w;
        pthread_t t;
        pid_t pid = start_waited(9, round % 2 ? 20 : 0, &w, &t);
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

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

struct any_waiter {
    struct waiter w;
    long returned_ms;
};

static void *any_wait_thread(void *arg) {
    struct any_waiter *a = arg;
    wait_thread(&a->w);
    a->returned_ms = now_ms();
    return NULL;
}

/* Starts a thread blocked in zwait(-1) (into *a), then closes `release`, the
 * write end of the pipe a child waits on. */
static void block_any_then_release(struct any_waiter *a, pthread_t *t, int release) {
    *a = (struct any_waiter){.w = {.pid = -1}};
    CHECK(pthread_create(t, NULL, any_wait_thread, a) == 0);
    ctest_sleep_ms(20); /* let the zwait(-1) block */
    close(release);
}

static void any_beside_pid_wait(void) {
    int won = 0, late = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid_t pid = start_child(6, p);
        close(p[0]);
        struct any_waiter a;
        pthread_t t;
        block_any_then_release(&a, &t, p[1]);
        int st = -1;
        pid_t got = zwait(pid, &st, 0);
        long returned_ms = now_ms();
        CHECK(pthread_join(t, NULL) == 0);
        CHECK((got == pid) != (a.w.got == pid));
        if (got == pid) {
            CHECK(a.w.err == ECHILD);
            won++;
            late += a.returned_ms - returned_ms >= 900;
        } else {
            CHECK(errno == ECHILD);
        }
        check_clean();
    }
    fprintf(stderr, "  zwait(pid) took the last child %d times; zwait(-1) returned 900 ms or more later %d times\n",
            won, late);
    CHECK(late == 0);
}

/* A zwait(-1) blocked while the main thread's foreign waitpid() takes the
 * last child, a plain fork() child (in scope unless ZREAP_OWN). */
static void any_beside_foreign_wait(void) {
    int won = 0, late = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            close(p[1]);
            (void)!read(p[0], &c, 1);
            _exit(5);
        }
        CHECK(pid > 0);
        close(p[0]);
        struct any_waiter a;
        pthread_t t;
        block_any_then_release(&a, &t, p[1]);
        int st = -1;
        pid_t got = waitpid(pid, &st, 0);
        long returned_ms = now_ms();
        for (int i = 0; i < 1000 && a.returned_ms == 0; i++) ctest_sleep_ms(5);
        if (a.returned_ms == 0) {
            fprintf(stderr, "  zwait(-1) still blocked 5 s after a foreign waitpid took the last child\n");
            _exit(1);
        }
        CHECK(pthread_join(t, NULL) == 0);
        CHECK((got == pid) != (a.w.got == pid));
        if (got == pid) {
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
            CHECK(a.w.err == ECHILD);
            won++;
            late += a.returned_ms - returned_ms >= 900;
        }
        check_clean();
    }
    fprintf(stderr, "  waitpid took the last child %d times; zwait(-1) returned 900 ms or more later %d times\n", won,
            late);
    CHECK(late == 0);
}

static int seen_exits[256];

static void count_exit(pid_t pid, int wstatus, void *ctx) {
    (void)pid;
    (void)ctx;
    if (WIFEXITED(wstatus)) seen_exits[WEXITSTATUS(wstatus)]++;
}

static int fd_readable(void) {
    struct pollfd pfd = {zreap_fd(), POLLIN, 0};
    return poll(&pfd, 1, 0) == 1;
}

/* 200 children exit at once; poll(zreap_fd()) + zreap_all() reports each once. */
static void poll_loop(void) {
    enum { N = 200 };
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    memset(seen_exits, 0, sizeof seen_exits);
    for (int i = 0; i < N; i++) start_child(i % 200, p);
    close(p[0]);
    close(p[1]);
    int reported = 0;
    for (int spins = 0; reported < N && spins < 10000; spins++) {
        struct pollfd pfd = {zreap_fd(), POLLIN, 0};
        if (poll(&pfd, 1, 10000) != 1) break;
        reported += zreap_all(count_exit, NULL);
    }
    CHECK(reported == N);
    for (int i = 0; i < N; i++) CHECK(seen_exits[i] == 1);
    CHECK(zreap_all(NULL, NULL) == 0);
    CHECK(!fd_readable());
    check_clean();
}

static void *release_later(void *arg) {
    ctest_sleep_ms(50);
    close(*(int *)arg);
    return NULL;
}

/* zwait(-1) that blocks until a child made while the fd is in use exits. */
static void any_waiter(void) {
    for (int round = 0; round < 5; round++) {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid_t pid = start_child(4, p);
        close(p[0]);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, release_later, &p[1]) == 0);
        int st = -1;
        CHECK(zwait(-1, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 4);
        CHECK(pthread_join(t, NULL) == 0);
        CHECK_ERR(zwait(-1, &st, 0), ECHILD);
        check_clean();
    }
}

static volatile int stop_reaping;

/* Reaps through the fd while the waits run: takes nothing a wait got. */
static void *reap_thread(void *arg) {
    (void)arg;
    while (!stop_reaping) {
        struct pollfd pfd = {zreap_fd(), POLLIN, 0};
        if (poll(&pfd, 1, 20) == 1) CHECK(zreap_all(NULL, NULL) >= 0);
    }
    return NULL;
}

static void run(const char *scope) {
    fprintf(stderr, "scope %s\n", scope);
    many_waiters();
    same_child();
    foreign_waitpid();
    any_beside_pid_wait();
    any_beside_foreign_wait();
}

/* With the reap fd in use. Exits a reap thread took are not the waits': the
 * parts that count exits run without it first, then beside it only the
 * checks that hold either way (no zombie, nothing tracked, no hang). */
static void run_fd(const char *scope) {
    CHECK(zreap_fd() >= 0);
    fprintf(stderr, "scope %s\n", scope);
    poll_loop();
    many_waiters();
    same_child();
    foreign_waitpid();
    any_beside_pid_wait();
    any_beside_foreign_wait();
    any_waiter();
    poll_loop();
    stop_reaping = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reap_thread, NULL) == 0);
    for (int round = 0; round < ROUNDS; round++) {
        struct waiter w;
        pthread_t wt;
        pid_t pid = start_waited(3, round % 2 ? 5 : 0, &w, &wt);
        CHECK(pthread_join(wt, NULL) == 0);
        CHECK(w.got == pid || (w.got == -1 && w.err == ECHILD));
        if (w.got == pid) CHECK(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 3);
    }
    stop_reaping = 1;
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(zreap_all(NULL, NULL) >= 0);
    check_clean();
}

int main(void) {
    ctest_start();
    run("none");
    CHECK(zreap_install(0) == 0);
    run("all");
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN) == 0);
    run("own");
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER) == 0);
    run_fd("own, no handler, zreap_fd");
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    run_fd("all, no handler, zreap_fd");
    /* Made without a handler, released with the all-children one. */
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    for (int i = 0; i < 5; i++) start_child(i, p);
    close(p[0]);
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(0) == 0);
    close(p[1]);
    WAIT_UNTIL(ctest_children() == 0, 10000);
    CHECK(ctest_children() == 0);
    memset(seen_exits, 0, sizeof seen_exits);
    CHECK(zreap_all(count_exit, NULL) == 5);
    for (int i = 0; i < 5; i++) CHECK(seen_exits[i] == 1);
    check_clean();
    /* ZREAP_OWN with the fd in use: the fd announces the exits. */
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    for (int i = 0; i < 5; i++) start_child(i, p);
    close(p[0]);
    close(p[1]);
    memset(seen_exits, 0, sizeof seen_exits);
    int reported = 0;
    struct pollfd pfd = {zreap_fd(), POLLIN, 0};
    while (reported < 5 && poll(&pfd, 1, 10000) == 1) reported += zreap_all(count_exit, NULL);
    CHECK(reported == 5);
    for (int i = 0; i < 5; i++) CHECK(seen_exits[i] == 1);
    check_clean();
    run_fd("own with a handler, zreap_fd");
    return ctest_finish("reaper_zwait_threads");
}
