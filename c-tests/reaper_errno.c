/* Proves the errno rules:
 * 1. "Success never changes errno": errno is set to EXDEV before successful calls of
 *    zreap_all (with and without install, reporting 0 and >0 exits), zwait (pid and
 *    -1, blocking and WNOHANG), zreap_fd, zreap_install (first and repeated), zreap_stats_get,
 *    zspawn, zfork, zreap_uninstall, zreap_version, and is still EXDEV afterwards.
 * 2. The SIGCHLD handler saves and restores errno: a main loop that keeps checking
 *    errno == EXDEV while hundreds of children exit (one at a time, so that each
 *    handler run ends with no child left, and then all at once) never sees it change.
 *    The loop also checks that the handler really ran while it was spinning. */
#include "ctest.h"

#define KEEPS(call)                                                                   \
    do {                                                                              \
        errno = EXDEV;                                                                \
        (void)(call);                                                                 \
        if (errno != EXDEV) {                                                         \
            fprintf(stderr, "%s:%d: %s changed errno to %d (%s)\n", __FILE__, __LINE__, \
                    #call, errno, strerror(errno));                                   \
            ctest_failures++;                                                         \
        }                                                                             \
    } while (0)

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static uint64_t reaped(void) {
    zreap_stats s;
    int saved = errno;
    if (zreap_stats_get(&s) != 0) s.reaped = 0;
    errno = saved;
    return s.reaped;
}

static long errno_changes; /* how often the spinning loop saw errno != EXDEV */
static int first_change;  /* the first value it saw instead */

/* Spins with errno == EXDEV until stats.reaped reaches `target` or `ms` pass.
 * Returns 1 if the target was reached while spinning. */
static int spin_until_reaped(uint64_t target, long ms) {
    long end = now_ms() + ms;
    volatile int *err = &errno; /* re-read on every iteration */
    *err = EXDEV;
    for (;;) {
        for (int i = 0; i < 2000; i++) {
            if (*err != EXDEV) {
                if (errno_changes++ == 0) {
                    first_change = *err;
                    fprintf(stderr, "errno changed to %d (%s) while spinning\n", first_change,
                            strerror(first_change));
                }
                *err = EXDEV;
            }
        }
        if (reaped() >= target) return 1;
        if (now_ms() > end) return 0;
    }
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    int st;
    char *true_argv[] = {"true", NULL};

    /* 1. Without install: zreap_all reaps a zombie and ends with no child left. */
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    WAIT_UNTIL(ctest_zombies() == 1, 10000);
    CHECK(ctest_zombies() == 1);
    errno = EXDEV;
    CHECK(zreap_all(NULL, NULL) == 1);
    CHECK(errno == EXDEV);
    KEEPS(zreap_all(NULL, NULL));
    KEEPS(zreap_uninstall());
    KEEPS(zreap_version());
    zreap_stats s;
    KEEPS(zreap_stats_get(&s));

    errno = EXDEV;
    CHECK(zreap_install(0) == 0);
    CHECK(errno == EXDEV);
    KEEPS(zreap_install(0));
    KEEPS(zreap_fd());
    KEEPS(zreap_fd());

    zspawn_options opts;
    KEEPS(zspawn_options_init(&opts));
    errno = EXDEV;
    pid = zspawn("/bin/true", true_argv, NULL, &opts);
    CHECK(pid > 0);
    CHECK(errno == EXDEV);
    errno = EXDEV;
    CHECK(zwait(pid, &st, 0) == pid); /* blocking path */
    CHECK(errno == EXDEV);

    char *sleep_argv[] = {"sleep", "30", NULL};
    pid = zspawn("/bin/sleep", sleep_argv, NULL, NULL);
    CHECK(pid > 0);
    errno = EXDEV;
    CHECK(zwait(pid, &st, WNOHANG) == 0);
    CHECK(errno == EXDEV);
    kill(pid, SIGKILL);
    WAIT_UNTIL(ctest_children() == 0, 10000);
    errno = EXDEV;
    CHECK(zwait(pid, &st, WNOHANG) == pid); /* already reaped by the handler */
    CHECK(errno == EXDEV);

    pid = zspawn("/bin/true", true_argv, NULL, NULL);
    CHECK(pid > 0);
    errno = EXDEV;
    CHECK(zwait(-1, &st, 0) == pid); /* any child */
    CHECK(errno == EXDEV);

    errno = EXDEV;
    pid = zfork(NULL);
    if (pid == 0) _exit(0);
    CHECK(pid > 0);
    CHECK(errno == EXDEV);
    CHECK(zwait(pid, &st, 0) == pid);

    pid = fork();
    if (pid == 0) _exit(0);
    WAIT_UNTIL(ctest_children() == 0, 10000);
    errno = EXDEV;
    CHECK(zreap_all(NULL, NULL) == 1);
    CHECK(errno == EXDEV);
    KEEPS(zreap_all(NULL, NULL));
    KEEPS(zreap_stats_get(&s));

    /* 2a. One child at a time: every handler run ends with no child left. */
    int in_time = 0;
    uint64_t base = reaped();
    for (int i = 0; i < 200; i++) {
        pid = fork();
        if (pid == 0) _exit(0);
        CHECK(pid > 0);
        in_time += spin_until_reaped(base + i + 1, 2000);
        WAIT_UNTIL(reaped() >= base + i + 1, 10000);
    }
    CHECK(reaped() == base + 200);
    CHECK(errno_changes == 0);
    CHECK(in_time >= 100); /* the handler really ran while the loop was spinning */
    CHECK(zreap_all(NULL, NULL) == 200);

    /* 2b. Tracked children, one at a time. */
    base = reaped();
    for (int i = 0; i < 50; i++) {
        pid = zspawn("/bin/true", true_argv, NULL, NULL);
        CHECK(pid > 0);
        spin_until_reaped(base + i + 1, 200);
        CHECK(zwait(pid, &st, 0) == pid);
    }
    CHECK(errno_changes == 0);

    /* 2c. 300 children exiting at once. */
    int gate[2];
    CHECK(pipe(gate) == 0);
    base = reaped();
    for (int i = 0; i < 300; i++) {
        pid = fork();
        if (pid == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) == -1 && errno == EINTR) {
            }
            _exit(0);
        }
        CHECK(pid > 0);
    }
    close(gate[0]);
    close(gate[1]);
    CHECK(spin_until_reaped(base + 300, 30000));
    CHECK(errno_changes == 0);
    CHECK(zreap_all(NULL, NULL) == 300);
    CHECK(ctest_children() == 0);
    CHECK(zreap_uninstall() == 0);
    return ctest_finish("reaper_errno");
}
