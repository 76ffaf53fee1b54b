/* Proves: when the program cannot be started, zspawn() returns -1 with the
 * errno the child got (missing file ENOENT, missing interpreter ENOENT, a
 * non-directory path component ENOTDIR, a file without exec bits EACCES even
 * for root, a directory EACCES, garbage bytes ENOEXEC, a missing cwd ENOENT,
 * a cwd that is a regular file ENOTDIR), also with redirected stdio, and
 * leaves no child, no zombie, no leaked fd, no tracked entry and no exit for
 * zwait()/zreap_all() to report — also with the SIGCHLD handler installed. */
#include "ctest.h"

#include <sys/stat.h>

static char *const ARGV_TRUE[] = {"true", NULL};

static int fds0;
static uint64_t tracked0;

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

static void write_file(const char *path, const char *data, size_t len, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, data, len) == (ssize_t)len);
    CHECK(close(fd) == 0);
    CHECK(chmod(path, mode) == 0);
}

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)wstatus;
    fprintf(stderr, "zreap_all reported pid %d after failed spawns\n", (int)pid);
    ++*(int *)ctx;
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;

    char dir[] = "/tmp/zreap-exec-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char missing[256], noexec[256], garbage[256], badinterp[256], regular[256], under_file[300];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    snprintf(noexec, sizeof noexec, "%s/noexec.sh", dir);
    snprintf(garbage, sizeof garbage, "%s/garbage", dir);
    snprintf(badinterp, sizeof badinterp, "%s/badinterp.sh", dir);
    snprintf(regular, sizeof regular, "%s/regular", dir);
    snprintf(under_file, sizeof under_file, "%s/regular/x", dir);

    const char script[] = "#!/bin/sh\nexit 0\n";
    write_file(noexec, script, sizeof script - 1, 0644);
    const char junk[] = "zreap: this is not a program\n\001\002\003\377\n";
    write_file(garbage, junk, sizeof junk - 1, 0755);
    const char bad[] = "#!/nonexistent/zreap-interpreter\nexit 0\n";
    write_file(badinterp, bad, sizeof bad - 1, 0755);
    write_file(regular, "x\n", 2, 0644);

    /* Sanity: the fixtures really behave as intended for a plain execve as well
     * (checked in a plain fork so a wrong fixture is told apart from a library bug). */
    {
        struct { const char *path; int err; } cases[] = {
            {missing, ENOENT}, {noexec, EACCES}, {garbage, ENOEXEC}, {badinterp, ENOENT}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            pid_t p = fork();
            if (p == 0) {
                execve(cases[i].path, ARGV_TRUE, environ);
                _exit(errno == cases[i].err ? 0 : 1);
            }
            int st = -1;
            CHECK(p > 0 && waitpid(p, &st, 0) == p);
            if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                fprintf(stderr, "fixture %s does not fail execve with %d\n", cases[i].path,
                        cases[i].err);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
    }

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

    CHECK_ERR(zspawn(missing, ARGV_TRUE, NULL, NULL), ENOENT);
    CLEAN("missing file");
    CHECK_ERR(zspawn("/nonexistent-zreap-dir/prog", ARGV_TRUE, NULL, NULL), ENOENT);
    CLEAN("missing directory");
    CHECK_ERR(zspawn(badinterp, ARGV_TRUE, NULL, NULL), ENOENT);
    CLEAN("missing #! interpreter");
    CHECK_ERR(zspawn(under_file, ARGV_TRUE, NULL, NULL), ENOTDIR);
    CLEAN("path below a regular file");
    CHECK_ERR(zspawn(noexec, ARGV_TRUE, NULL, NULL), EACCES);
    CLEAN("mode 0644 file");
    CHECK_ERR(zspawn(dir, ARGV_TRUE, NULL, NULL), EACCES);
    CLEAN("a directory");
    CHECK_ERR(zspawn(garbage, ARGV_TRUE, NULL, NULL), ENOEXEC);
    CLEAN("garbage bytes");

    zspawn_options_init(&o);
    o.cwd = missing;
    CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), ENOENT);
    CLEAN("missing cwd");
    o.cwd = regular;
    CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), ENOTDIR);
    CLEAN("cwd is a regular file");

    /* The same failures with all three stdio slots redirected and a pdeathsig:
     * the error path must still close everything it opened and leave our fds open. */
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    fds0 = ctest_open_fds();
    zspawn_options_init(&o);
    o.stdin_fd = p[0];
    o.stdout_fd = p[1];
    o.stderr_fd = p[1];
    o.pdeathsig = SIGKILL;
    o.flags = ZSPAWN_SETSID;
    CHECK_ERR(zspawn(missing, ARGV_TRUE, NULL, &o), ENOENT);
    CLEAN("missing file, redirected");
    CHECK_ERR(zspawn(garbage, ARGV_TRUE, NULL, &o), ENOEXEC);
    CLEAN("garbage, redirected");
    o.cwd = regular;
    CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), ENOTDIR);
    CLEAN("bad cwd, redirected");
    CHECK(fcntl(p[0], F_GETFD) == FD_CLOEXEC);
    CHECK(fcntl(p[1], F_GETFD) == FD_CLOEXEC);
    /* Nothing was written into the pipe by a half-started child. */
    CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
    char c;
    CHECK(read(p[0], &c, 1) == -1 && errno == EAGAIN);
    close(p[0]);
    close(p[1]);

    /* No exit of a failed child is delivered later. */
    int st = 0;
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);
    int reported = 0;
    CHECK(zreap_all(on_exit_cb, &reported) == 0);
    CHECK(reported == 0);

    /* The same with the SIGCHLD handler installed (every child reaped at once):
     * a failed spawn must not turn into an exit that is reported later. */
    CHECK(zreap_install(0) == 0);
    fds0 = ctest_open_fds();
    CHECK_ERR(zspawn(missing, ARGV_TRUE, NULL, NULL), ENOENT);
    CLEAN("missing file, handler installed");
    CHECK_ERR(zspawn(garbage, ARGV_TRUE, NULL, NULL), ENOEXEC);
    CLEAN("garbage bytes, handler installed");
    zspawn_options_init(&o);
    o.cwd = regular;
    CHECK_ERR(zspawn("/bin/true", ARGV_TRUE, NULL, &o), ENOTDIR);
    CLEAN("cwd is a regular file, handler installed");
    ctest_sleep_ms(50); /* let any late SIGCHLD arrive */
    reported = 0;
    CHECK(zreap_all(on_exit_cb, &reported) == 0);
    CHECK(reported == 0);
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);
    CHECK(zreap_uninstall() == 0);

    /* Success after all those failures still works. */
    pid_t pid = zspawn("/bin/true", ARGV_TRUE, NULL, NULL);
    CHECK(pid > 0);
    st = -1;
    CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);

    unlink(noexec);
    unlink(garbage);
    unlink(badinterp);
    unlink(regular);
    CHECK(rmdir(dir) == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("spawn_exec_errors");
}
