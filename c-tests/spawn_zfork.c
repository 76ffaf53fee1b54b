/* Proves: zfork() returns 0 in the child and the child's pid in the parent,
 * the child is tracked (zwait gets its status, zreap_stats counts it), unknown
 * flags and an out-of-range pdeathsig fail with EINVAL and no child,
 * ZSPAWN_SETSID / ZSPAWN_SETPGROUP take effect in the child before zfork()
 * returns there, pdeathsig is armed in the child before zfork() returns there
 * (PR_GET_PDEATHSIG), the default arms none, and cwd and the fds are ignored.
 * The child reports what it saw through its exit code. */
#include "ctest.h"

#include <limits.h>

/* Runs zfork(opts); in the child runs check() and exits with its result;
 * in the parent returns the child's exit code (or -1 and prints why). */
static int zfork_run(const zspawn_options *opts, int (*check)(void), int want, const char *name) {
    errno = EDOM;
    pid_t pid = zfork(opts);
    if (pid == 0) _exit(check());
    if (pid < 0) {
        fprintf(stderr, "%s: zfork failed: %s\n", name, strerror(errno));
        ctest_failures++;
        return -1;
    }
    if (errno != EDOM) {
        fprintf(stderr, "%s: successful zfork changed errno to %d\n", name, errno);
        ctest_failures++;
    }
    int st = -1;
    pid_t w = zwait(pid, &st, 0);
    if (w != pid || !WIFEXITED(st)) {
        fprintf(stderr, "%s: zwait returned %d status 0x%x\n", name, (int)w, st);
        ctest_failures++;
        return -1;
    }
    if (WEXITSTATUS(st) != want)
        fprintf(stderr, "%s: the child exited %d, want %d\n", name, WEXITSTATUS(st), want);
    return WEXITSTATUS(st);
}

static pid_t parent_pid, parent_sid, parent_pgrp;
static char parent_cwd[PATH_MAX];

static int child_exit42(void) { return 42; }

static int child_plain(void) {
    if (getppid() != parent_pid) return 1;
    if (getsid(0) != parent_sid) return 2;
    if (getpgrp() != parent_pgrp) return 3;
    int sig = -1;
    if (prctl(PR_GET_PDEATHSIG, &sig) != 0 || sig != 0) return 4;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, parent_cwd) != 0) return 5;
    /* stdout/stderr are still ours (the fds in the options are ignored). */
    if (fcntl(1, F_GETFD) < 0 || fcntl(2, F_GETFD) < 0) return 6;
    return 0;
}

static int child_setsid(void) {
    if (getsid(0) != getpid()) return 1;
    if (getpgrp() != getpid()) return 2;
    return 0;
}

static int child_setpgroup(void) {
    if (getpgrp() != getpid()) return 1;
    if (getsid(0) != parent_sid) return 2;
    return 0;
}

static int want_sig;
static int child_pdeathsig(void) {
    int sig = -1;
    if (prctl(PR_GET_PDEATHSIG, &sig) != 0) return 1;
    return sig == want_sig ? 0 : 2;
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;
    close(986);
    close(987);
    parent_pid = getpid();
    parent_sid = getsid(0);
    parent_pgrp = getpgrp();
    CHECK(getcwd(parent_cwd, sizeof parent_cwd) != NULL);
    /* The library keeps fds of its own for its whole life (zreap_fd()'s, made on
     * first use): let them exist before counting ours, so that any change of the
     * count from here on is a leak. */
    CHECK(zreap_fd() >= 0);
    int fds0 = ctest_open_fds();
    zspawn_options o;

    /* Basic: exit status delivered, tracked while alive. */
    zreap_stats s0, s1, s2;
    memset(&s0, 0, sizeof s0);
    CHECK(zreap_stats_get(&s0) == 0);
    int go[2];
    CHECK(pipe2(go, O_CLOEXEC) == 0);
    pid_t pid = zfork(NULL);
    if (pid == 0) {
        char c;
        close(go[1]);
        ssize_t r = read(go[0], &c, 1); /* wait for the parent's go (or EOF) */
        (void)r;
        _exit(42);
    }
    close(go[0]);
    CHECK(pid > 0);
    memset(&s1, 0, sizeof s1);
    CHECK(zreap_stats_get(&s1) == 0);
    CHECK(s1.tracked == s0.tracked + 1);
    int st = -1;
    int fds_poll = ctest_open_fds();
    CHECK(zwait(pid, &st, WNOHANG) == 0);
    if (ctest_open_fds() != fds_poll)
        fprintf(stderr, "zwait(WNOHANG) of a running zfork child: open fds %d -> %d\n", fds_poll,
                ctest_open_fds());
    CHECK(ctest_open_fds() == fds_poll);
    CHECK(write(go[1], "x", 1) == 1);
    close(go[1]);
    st = -1;
    CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 42);
    CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);
    memset(&s2, 0, sizeof s2);
    CHECK(zreap_stats_get(&s2) == 0);
    CHECK(s2.tracked == s0.tracked);
    CHECK(s2.reported == s1.reported + 1);

    zspawn_options_init(&o);
    CHECK(zfork_run(&o, child_exit42, 42, "default opts") == 42);

    /* Validation: no child is made. */
    zspawn_options_init(&o);
    o.flags = 0x80000000u;
    CHECK_ERR(zfork(&o), EINVAL);
    o.flags = ~0u;
    CHECK_ERR(zfork(&o), EINVAL);
    zspawn_options_init(&o);
    o.pdeathsig = 65;
    CHECK_ERR(zfork(&o), EINVAL);
    o.pdeathsig = SIGRTMAX + 1;
    CHECK_ERR(zfork(&o), EINVAL);
    o.pdeathsig = -1;
    CHECK_ERR(zfork(&o), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_open_fds() == fds0);

    /* Defaults: same session and group, no pdeathsig. */
    CHECK(zfork_run(NULL, child_plain, 0, "NULL opts") == 0);
    /* cwd and fds are ignored by zfork (even values zspawn would reject:
     * a missing directory, fds that are not open). */
    zspawn_options_init(&o);
    o.cwd = "/nonexistent-zreap-dir";
    o.stdin_fd = 987;
    o.stdout_fd = 986;
    o.stderr_fd = 987;
    CHECK(zfork_run(&o, child_plain, 0, "cwd and fds ignored") == 0);

    /* Flags apply in the child. */
    zspawn_options_init(&o);
    o.flags = ZSPAWN_SETSID;
    CHECK(zfork_run(&o, child_setsid, 0, "ZSPAWN_SETSID") == 0);
    o.flags = ZSPAWN_SETPGROUP;
    CHECK(zfork_run(&o, child_setpgroup, 0, "ZSPAWN_SETPGROUP") == 0);

    /* pdeathsig is armed before zfork returns in the child. */
    int sigs[] = {SIGKILL, SIGTERM, SIGUSR1, SIGRTMAX};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        zspawn_options_init(&o);
        o.pdeathsig = sigs[i];
        want_sig = sigs[i];
        int before = ctest_failures;
        CHECK(zfork_run(&o, child_pdeathsig, 0, "pdeathsig") == 0);
        if (ctest_failures != before) fprintf(stderr, "  (pdeathsig %d)\n", sigs[i]);
    }

    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_open_fds() == fds0);
    return ctest_finish("spawn_zfork");
}
