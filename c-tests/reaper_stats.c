/* Proves zreap_stats_get(): NULL -> -1/EINVAL; a fresh process has all zero;
 * `tracked` counts zspawn()/zfork() children that are alive or exited but not yet
 * delivered, and drops on delivery (zwait or zreap_all); a failed zspawn() tracks
 * nothing; `reaped` counts reaps by the handler and by zreap_all() without a
 * handler (plain fork children included, but not children we waitpid() ourselves);
 * `reported` counts deliveries; `dropped` stays 0. */
#include "ctest.h"

static zreap_stats get(void) {
    zreap_stats s;
    memset(&s, 0xff, sizeof s);
    CHECK(zreap_stats_get(&s) == 0);
    return s;
}

#define EXPECT(r, rep, tr)                                                               \
    do {                                                                                 \
        zreap_stats s_ = get();                                                          \
        if (s_.reaped != (r) || s_.reported != (rep) || s_.tracked != (tr) ||            \
            s_.dropped != 0) {                                                           \
            fprintf(stderr,                                                              \
                    "%s:%d: stats reaped %llu reported %llu tracked %llu dropped %llu, " \
                    "want %d %d %d 0\n",                                                 \
                    __FILE__, __LINE__, (unsigned long long)s_.reaped,                   \
                    (unsigned long long)s_.reported, (unsigned long long)s_.tracked,     \
                    (unsigned long long)s_.dropped, (r), (rep), (tr));                   \
            ctest_failures++;                                                            \
        }                                                                                \
    } while (0)

static uint64_t reaped(void) { return get().reaped; }

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    int st;
    CHECK_ERR(zreap_stats_get(NULL), EINVAL);
    EXPECT(0, 0, 0);

    CHECK(zreap_install(0) == 0);
    EXPECT(0, 0, 0);

    /* Three live tracked children. */
    char *sleep_argv[] = {"sleep", "30", NULL};
    pid_t p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = zspawn("/bin/sleep", sleep_argv, NULL, NULL);
        CHECK(p[i] > 0);
    }
    EXPECT(0, 0, 3);

    /* A failed zspawn() tracks nothing. */
    CHECK_ERR(zspawn("/nonexistent/zreap-test", sleep_argv, NULL, NULL), ENOENT);
    EXPECT(0, 0, 3);

    CHECK(kill(p[0], SIGKILL) == 0);
    CHECK(zwait(p[0], &st, 0) == p[0]);
    EXPECT(1, 1, 2);

    /* Reaped by the handler but not delivered: still tracked. */
    CHECK(kill(p[1], SIGKILL) == 0);
    CHECK(kill(p[2], SIGKILL) == 0);
    WAIT_UNTIL(reaped() == 3, 10000);
    EXPECT(3, 1, 2);
    CHECK(ctest_children() == 0);
    CHECK(zreap_all(NULL, NULL) == 2);
    EXPECT(3, 3, 0);

    /* zfork() children are tracked too. */
    int gate[2];
    pid_t zf = ctest_zfork_gated(gate, 1);
    EXPECT(3, 3, 1);
    close(gate[1]);
    CHECK(zwait(zf, &st, 0) == zf);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    EXPECT(4, 4, 0);

    /* A plain fork() child: reaped by the handler, never tracked. */
    pid_t pf = fork();
    if (pf == 0) _exit(2);
    CHECK(pf > 0);
    WAIT_UNTIL(reaped() == 5, 10000);
    EXPECT(5, 4, 0);
    CHECK(zreap_all(NULL, NULL) == 1);
    EXPECT(5, 5, 0);
    CHECK(zreap_all(NULL, NULL) == 0);
    EXPECT(5, 5, 0);

    /* Without a handler, zreap_all() does the reaping. */
    CHECK(zreap_uninstall() == 0);
    pf = fork();
    if (pf == 0) _exit(3);
    CHECK(pf > 0);
    WAIT_UNTIL(ctest_zombies() == 1, 10000);
    CHECK(ctest_zombies() == 1);
    EXPECT(5, 5, 0);
    CHECK(zreap_all(NULL, NULL) == 1);
    CHECK(ctest_zombies() == 0);
    EXPECT(6, 6, 0);

    /* A child we waitpid() ourselves is not the library's. */
    pf = fork();
    if (pf == 0) _exit(4);
    CHECK(waitpid(pf, &st, 0) == pf);
    EXPECT(6, 6, 0);

    CHECK_ERR(zreap_stats_get(NULL), EINVAL);
    return ctest_finish("reaper_stats");
}
