/* Proves that ZREAP_OWN reaps only zspawn()/zfork() children and leaves every
 * other child to its own waiter: while 4 threads loop zspawn("/bin/true") + zwait()
 * (each status must be exit 0), the main thread runs popen()/pclose() and system()
 * over and over, and every pclose()/system() still gets its child's real status
 * (3 and 7), never -1/ECHILD. A plain fork() child stays a zombie (the handler and
 * zreap_all() leave it alone) until we waitpid() it ourselves. */
#include "ctest.h"

#include <pthread.h>
#include <stdatomic.h>

#define THREADS 4
#define SPAWNS_PER_THREAD 200
#define SHELL_ROUNDS 100

static atomic_int thread_failures;

static void *spawner(void *arg) {
    (void)arg;
    char *argv[] = {"true", NULL};
    for (int i = 0; i < SPAWNS_PER_THREAD; i++) {
        pid_t pid = zspawn("/bin/true", argv, NULL, NULL);
        if (pid <= 0) {
            fprintf(stderr, "zspawn failed: %s\n", strerror(errno));
            atomic_fetch_add(&thread_failures, 1);
            continue;
        }
        int st = -1;
        pid_t r = zwait(pid, &st, 0);
        if (r != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "zwait(%d) returned %d status 0x%x errno %s\n", (int)pid, (int)r, st,
                    strerror(errno));
            atomic_fetch_add(&thread_failures, 1);
        }
    }
    return NULL;
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(ZREAP_OWN) == 0);
    (void)zreap_fd();
    char *warm_argv[] = {"true", NULL};
    pid_t warm = zspawn("/bin/true", warm_argv, NULL, NULL); /* lazy set-up, if any */
    int wst;
    CHECK(warm > 0 && zwait(warm, &wst, 0) == warm);
    int fds_before = ctest_open_fds();

    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&th[i], NULL, spawner, NULL) == 0);

    int popen_bad = 0, system_bad = 0;
    for (int i = 0; i < SHELL_ROUNDS; i++) {
        FILE *f = popen("exit 3", "r");
        CHECK(f != NULL);
        if (f) {
            int st = pclose(f);
            if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 3) {
                if (popen_bad++ < 5)
                    fprintf(stderr, "pclose returned 0x%x (errno %s)\n", st, strerror(errno));
            }
        }
        int st = system("exit 7");
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 7) {
            if (system_bad++ < 5)
                fprintf(stderr, "system returned 0x%x (errno %s)\n", st, strerror(errno));
        }
    }
    CHECK(popen_bad == 0);
    CHECK(system_bad == 0);

    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(th[i], NULL) == 0);
    CHECK(atomic_load(&thread_failures) == 0);

    /* A plain fork() child is never reaped under ZREAP_OWN. */
    pid_t pid = fork();
    if (pid == 0) _exit(42);
    CHECK(pid > 0);
    WAIT_UNTIL(ctest_zombies() == 1, 10000);
    CHECK(ctest_zombies() == 1);
    /* Another tracked child exiting triggers the handler again. */
    char *argv[] = {"true", NULL};
    pid_t t = zspawn("/bin/true", argv, NULL, NULL);
    CHECK(t > 0);
    int st = -1;
    CHECK(zwait(t, &st, 0) == t);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(zreap_all(NULL, NULL) == 0);
    int still = 0;
    for (int i = 0; i < 20; i++) {
        ctest_sleep_ms(10);
        still += ctest_zombies() == 1;
    }
    CHECK(still == 20);
    CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);
    st = -1;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    CHECK(ctest_zombies() == 0);

    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(ctest_open_fds() == fds_before); /* no fd leaked per child */
    CHECK(s.reaped == THREADS * SPAWNS_PER_THREAD + 2);
    CHECK(s.reported == THREADS * SPAWNS_PER_THREAD + 2);
    CHECK(s.tracked == 0);
    CHECK(s.dropped == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("reaper_own_popen");
}
