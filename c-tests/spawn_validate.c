/* Proves: zspawn() rejects bad arguments with -1 and the documented errno —
 * NULL path or argv (EINVAL), unknown flag bits (EINVAL), pdeathsig outside
 * 0..SIGRTMAX (EINVAL), an fd below -1 (EBADF), an fd that is not open (EBADF),
 * a path longer than PATH_MAX (ENAMETOOLONG) — and that after every failure
 * there is no new child, no zombie, no leaked fd and no tracked entry.
 * Also proves the boundary values that must be accepted (pdeathsig 0 and
 * SIGRTMAX, fds -1, every defined flag) start the program. */
#include "ctest.h"

#include <limits.h>

static char *const ARGV_TRUE[] = {"true", NULL};

static int fds0;
static uint64_t tracked0;

/* After a failed zspawn(): nothing may be left behind, right now. */
static void check_clean(int line, const char *what) {
    zreap_stats st;
    memset(&st, 0, sizeof st);
    int saved = errno;
    int rc = zreap_stats_get(&st);
    int children = ctest_children(), zombies = ctest_zombies(), fds = ctest_open_fds();
    if (rc != 0 || children != 0 || zombies != 0 || fds != fds0 || st.tracked != tracked0) {
        fprintf(stderr,
                "%s:%d: after %s: stats rc %d, children %d (want 0), zombies %d (want 0), "
                "open fds %d (want %d), tracked %llu (want %llu)\n",
                __FILE__, line, what, rc, children, zombies, fds, fds0,
                (unsigned long long)st.tracked, (unsigned long long)tracked0);
        ctest_failures++;
    }
    errno = saved;
}
#define CLEAN(what) check_clean(__LINE__, what)

/* Spawns with `o`, expects success and exit status 0. */
static void expect_runs(const zspawn_options *o, const char *what) {
    pid_t pid = zspawn("/bin/true", ARGV_TRUE, NULL, o);
    if (pid <= 0) {
        fprintf(stderr, "%s:%d: zspawn(%s) failed: %s\n", __FILE__, __LINE__, what,
                strerror(errno));
        ctest_failures++;
        return;
    }
    int st = -1;
    pid_t w = zwait(pid, &st, 0);
    if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s:%d: %s: zwait returned %d status 0x%x, want %d exit 0\n", __FILE__,
                __LINE__, what, (int)w, st, (int)pid);
        ctest_failures++;
    }
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;

    /* fd 987 must not be open for the "not open" cases. */
    close(987);
    CHECK(fcntl(987, F_GETFD) == -1 && errno == EBADF);

    zreap_stats st0;
    memset(&st0, 0, sizeof st0);
    CHECK(zreap_stats_get(&st0) == 0);
    tracked0 = st0.tracked;
    /* The library keeps fds of its own for its whole life (zreap_fd()'s, made on
     * first use): let them exist before counting ours, so that any change of the
     * count from here on is a leak. */
    CHECK(zreap_fd() >= 0);
    fds0 = ctest_open_fds();
    CHECK(ctest_children() == 0);

    zspawn_options o;

    /* NULL path, NULL argv; with NULL options and with explicit defaults. */
    CHECK_ERR(zspawn(NULL, ARGV_TRUE, NULL, NULL), EINVAL);
    CLEAN("NULL path");
    zspawn_options_init(&o);
    CHECK_ERR(zspawn(NULL, ARGV_TRUE, NULL, &o), EINVAL);
    CLEAN("NULL path, default opts");
    CHECK_ERR(zspawn("/bin/true", NULL, NULL, NULL), EINVAL);
    CLEAN("NULL argv");
    CHECK_ERR(zspawn("/bin/true", NULL, NULL, &o), EINVAL);
    CLEAN("NULL argv, default opts");

    /* Unknown flag bits. */
    zspawn_options_init(&o);
    o.flags = 0x80000000u;
    CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), EINVAL);
    CLEAN("flags 0x80000000");
    o.flags = ~0u;
    CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), EINVAL);
    CLEAN("flags ~0");
    o.flags = ZSPAWN_SEARCH_PATH | 0x40000000u;
    CHECK_ERR(zspawn("true", ARGV_TRUE, NULL, &o), EINVAL);
    CLEAN("known flag plus unknown bit");

    /* pdeathsig outside 0..SIGRTMAX. */
    int bad_sigs[] = {-1, SIGRTMAX + 1, 65, 1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof bad_sigs / sizeof bad_sigs[0]; i++) {
        zspawn_options_init(&o);
        o.pdeathsig = bad_sigs[i];
        int before = ctest_failures;
        CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), EINVAL);
        if (ctest_failures != before) fprintf(stderr, "  (pdeathsig %d)\n", bad_sigs[i]);
        CLEAN("bad pdeathsig");
    }

    /* fds below -1 and fds that are not open, on each of the three slots. */
    int bad_fds[] = {-2, INT_MIN, 987};
    for (size_t i = 0; i < sizeof bad_fds / sizeof bad_fds[0]; i++) {
        for (int slot = 0; slot < 3; slot++) {
            zspawn_options_init(&o);
            if (slot == 0) o.stdin_fd = bad_fds[i];
            if (slot == 1) o.stdout_fd = bad_fds[i];
            if (slot == 2) o.stderr_fd = bad_fds[i];
            int before = ctest_failures;
            CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), EBADF);
            if (ctest_failures != before) fprintf(stderr, "  (fd %d on slot %d)\n", bad_fds[i], slot);
            CLEAN("bad fd");
        }
    }

    /* Paths of PATH_MAX characters and more (short components, so only the total
     * length is wrong). */
    size_t lens[] = {PATH_MAX, PATH_MAX + 1, 5000, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        char *p = malloc(n + 1);
        CHECK(p != NULL);
        if (!p) break;
        for (size_t k = 0; k < n; k++) p[k] = (k % 2 == 0) ? '/' : 'a';
        p[n] = '\0';
        int before = ctest_failures;
        CHECK_ERR(zspawn(p, ARGV_TRUE, NULL, NULL), ENAMETOOLONG);
        if (ctest_failures != before) fprintf(stderr, "  (path of %zu chars)\n", n);
        CLEAN("long path");
        free(p);
    }

    /* Boundaries that must be accepted. */
    zspawn_options_init(&o);
    CHECK(o.flags == 0 && o.pdeathsig == 0 && o.cwd == NULL && o.stdin_fd == -1 &&
          o.stdout_fd == -1 && o.stderr_fd == -1);
    expect_runs(NULL, "NULL opts");
    expect_runs(&o, "default opts");
    o.pdeathsig = SIGRTMAX;
    expect_runs(&o, "pdeathsig SIGRTMAX");
    o.pdeathsig = 1;
    expect_runs(&o, "pdeathsig 1");
    zspawn_options_init(&o);
    o.flags = ZSPAWN_SEARCH_PATH | ZSPAWN_SETPGROUP;
    expect_runs(&o, "SEARCH_PATH|SETPGROUP");
    zspawn_options_init(&o);
    o.flags = ZSPAWN_SETSID;
    expect_runs(&o, "SETSID");

    CLEAN("the accepted cases");
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("spawn_validate");
}
