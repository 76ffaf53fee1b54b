/* Proves how zdaemonize() fails, and the exit codes of the caller's process:
 *  - a missing workdir: -1 ENOENT (ZDAEMON_RETURN) and no process left, not
 *    even a zombie (we are a subreaper, so a dead daemon would come to us);
 *    with a pidfile too, the failed daemon leaves no pidfile behind;
 *  - a pidfile in a missing directory: -1 ENOENT;
 *  - as uid/gid 65534, a pidfile in a root-owned 0755 directory: -1 EACCES,
 *    nothing created; a root-only 0700 workdir: -1 EACCES;
 *  - bad input: -1 EINVAL with nothing forked, also without ZDAEMON_RETURN
 *    (the caller returns instead of exiting): unknown flags, umask 01000 or
 *    -2, an empty workdir or pidfile; a pidfile or workdir path too long:
 *    ENAMETOOLONG, nothing forked (also without ZDAEMON_RETURN);
 *  - zdaemon_options_init() fills in the defaults and accepts NULL;
 *  - success leaves errno as it was;
 *  - without ZDAEMON_RETURN the caller's process exits 1 with exactly one line
 *    on stderr when setup fails, and 0 with nothing on stderr once the daemon
 *    is set up (zdaemonize(NULL): all defaults). It exits with _exit (its
 *    atexit handlers do not run) after flushing stdio before the fork: output
 *    buffered before zdaemonize() appears exactly once. */
#include "ctest_tree.h"

#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ helpers */

/* No child of ours is left, not even a zombie, after at most 10 s. */
static void check_nothing_left(const char *what) {
    WAIT_UNTIL(ctest_children() == 0, 10000);
    int children = ctest_children(), zombies = ctest_zombies();
    if (children != 0 || zombies != 0) {
        fprintf(stderr, "  after %s: %d children (%d zombies) left\n", what, children, zombies);
        ctest_failures++;
        kill_children();
    }
}

/* Reaps `n` children within 10 s: the failed daemons of a subprocess, which
 * were reparented to us (the nearest subreaper), not to their caller. */
static int reap_adopted(int n) {
    int got = 0;
    for (long waited = 0; got < n && waited < 10000;) {
        pid_t r = waitpid(-1, NULL, WNOHANG);
        if (r > 0) {
            got++;
        } else {
            ctest_sleep_ms(5);
            waited += 5;
        }
    }
    return got;
}

static zdaemon_options opts(uint32_t flags, const char *workdir, const char *pidfile, int mask) {
    zdaemon_options o;
    zdaemon_options_init(&o);
    o.flags = flags;
    o.workdir = workdir;
    o.pidfile = pidfile;
    o.umask = mask;
    return o;
}

/* Daemons that get past zdaemonize() by mistake go away at once. */
#define DAEMONIZE(o) ({                         \
    zdaemon_options o_ = (o);                   \
    pid_t p_ = zdaemonize(&o_);                 \
    if (p_ == 0) _exit(99);                     \
    p_;                                         \
})

static char dir[] = "/tmp/zreap-daemon-errors-XXXXXX";
static char marker[PATH_MAX + 64];

static void atexit_marker(void) {
    int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
}

/* Runs `body` in a subprocess with stdout and stderr on pipes; returns its
 * wait status and what it wrote. */
static int run_sub(void (*body)(void), char *out, size_t outcap, char *err, size_t errcap) {
    int o[2], e[2];
    if (pipe2(o, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(o[1], 1);
        dup2(e[1], 2);
        body();
        _exit(98); /* not reached: zdaemonize() exits without ZDAEMON_RETURN */
    }
    close(o[1]);
    close(e[1]);
    CHECK(read_until_eof(o[0], out, outcap) >= 0);
    CHECK(read_until_eof(e[0], err, errcap) >= 0);
    close(o[0]);
    close(e[0]);
    int st = -1;
    CHECK(pid > 0 && reap_within(pid, &st, 20000) == pid);
    return st;
}

static char missing[PATH_MAX + 64], daemon_pid_file[PATH_MAX + 64];

static void sub_failing(void) {
    zdaemon_options o = opts(0, missing, NULL, 0);
    zdaemonize(&o);
}

static char long_workdir[PATH_MAX + 16];

/* Without RETURN: exits 42 when zdaemonize() returns -1 ENAMETOOLONG. */
static void sub_long_workdir(void) {
    zdaemon_options o = opts(0, long_workdir, NULL, 0);
    pid_t p = zdaemonize(&o);
    if (p == 0) _exit(99);
    _exit(p == -1 && errno == ENAMETOOLONG ? 42 : 43);
}

static void sub_succeeding(void) {
    atexit(atexit_marker);
    static char buf[BUFSIZ];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    printf("before\n"); /* still in the buffer */
    if (zdaemonize(NULL) == 0) {
        /* The daemon: tell the test who it is, then go. */
        char text[32], tmp[PATH_MAX + 80];
        snprintf(text, sizeof text, "%d\n", (int)getpid());
        snprintf(tmp, sizeof tmp, "%s.tmp", daemon_pid_file);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text)) rename(tmp, daemon_pid_file);
        _exit(0);
    }
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    CHECK(mkdtemp(dir) != NULL);
    char pidfile[PATH_MAX + 64], nodir_pidfile[PATH_MAX + 64];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    snprintf(pidfile, sizeof pidfile, "%s/d.pid", dir);
    snprintf(nodir_pidfile, sizeof nodir_pidfile, "%s/missing/d.pid", dir);
    snprintf(marker, sizeof marker, "%s/atexit-ran", dir);
    snprintf(daemon_pid_file, sizeof daemon_pid_file, "%s/daemon-pid", dir);

    /* 1. A missing workdir. */
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, missing, NULL, 0)), ENOENT);
    check_nothing_left("missing workdir");

    /* ... with a pidfile: the daemon that failed leaves none behind. */
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, missing, pidfile, 0)), ENOENT);
    check_nothing_left("missing workdir with a pidfile");
    if (access(pidfile, F_OK) == 0) {
        char text[64] = "";
        read_file(pidfile, text, sizeof text);
        fprintf(stderr, "  the daemon that failed to start left its pidfile behind, holding \"%.*s\"\n",
                (int)strcspn(text, "\n"), text);
        ctest_failures++;
        unlink(pidfile);
    }

    /* 2. The pidfile's directory is missing. */
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, NULL, nodir_pidfile, 0)), ENOENT);
    check_nothing_left("missing pidfile directory");

    /* 3. EACCES, as nobody: a pidfile in a root-owned 0755 directory, a
     * root-only workdir. */
    char rootdir[PATH_MAX + 64], private_dir[PATH_MAX + 64], root_pidfile[PATH_MAX + 80];
    snprintf(rootdir, sizeof rootdir, "%s/rootonly", dir);
    snprintf(private_dir, sizeof private_dir, "%s/private", dir);
    snprintf(root_pidfile, sizeof root_pidfile, "%s/d.pid", rootdir);
    CHECK(mkdir(rootdir, 0755) == 0 && chmod(rootdir, 0755) == 0);
    CHECK(mkdir(private_dir, 0700) == 0 && chmod(private_dir, 0700) == 0);
    CHECK(chmod(dir, 0755) == 0); /* mkdtemp made it 0700: let nobody through */
    int errs[2];
    CHECK(pipe2(errs, O_CLOEXEC) == 0);
    pid_t sub = fork();
    if (sub == 0) {
        int got[2] = {-1, -1};
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
        errno = 0;
        if (DAEMONIZE(opts(ZDAEMON_RETURN, NULL, root_pidfile, 0)) == -1) got[0] = errno;
        errno = 0;
        if (DAEMONIZE(opts(ZDAEMON_RETURN, private_dir, NULL, 0)) == -1) got[1] = errno;
        _exit(write(errs[1], got, sizeof got) == sizeof got ? 0 : 3);
    }
    close(errs[1]);
    int got[2] = {0, 0};
    CHECK(read(errs[0], got, sizeof got) == sizeof got);
    close(errs[0]);
    int st = -1;
    CHECK(sub > 0 && reap_within(sub, &st, 20000) == sub);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (got[0] != EACCES || got[1] != EACCES)
        fprintf(stderr, "  as nobody: pidfile errno %d (%s), workdir errno %d (%s), want EACCES twice\n", got[0],
                strerror(got[0]), got[1], strerror(got[1]));
    CHECK(got[0] == EACCES);
    CHECK(got[1] == EACCES);
    CHECK(access(root_pidfile, F_OK) == -1 && errno == ENOENT);
    /* The subprocess is not a subreaper: its two failed daemons came to us. */
    CHECK(reap_adopted(2) == 2);
    check_nothing_left("EACCES");

    /* 4. Bad input: EINVAL before anything is forked, with and without RETURN. */
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN | 0x100, NULL, NULL, 0)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(0x100, NULL, NULL, 0)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(0x80000000u, NULL, NULL, 0)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, NULL, NULL, 01000)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(0, NULL, NULL, 01000)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, NULL, NULL, -2)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, "", NULL, 0)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(0, "", NULL, 0)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, NULL, "", 0)), EINVAL);
    CHECK(ctest_children() == 0);
    CHECK_ERR(DAEMONIZE(opts(0, NULL, "", 0)), EINVAL);
    CHECK(ctest_children() == 0);
    static char long_path[PATH_MAX + 16];
    memset(long_path, 'x', PATH_MAX);
    long_path[0] = '/';
    CHECK_ERR(DAEMONIZE(opts(ZDAEMON_RETURN, NULL, long_path, 0)), ENAMETOOLONG);
    CHECK(ctest_children() == 0);
    memset(long_workdir, 'x', PATH_MAX);
    long_workdir[0] = '/';
    char sub_out[256], sub_err[4096];
    st = run_sub(sub_long_workdir, sub_out, sizeof sub_out, sub_err, sizeof sub_err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 42) fprintf(stderr, "  a long workdir: status 0x%x, %s", st, sub_err);
    check_nothing_left("a long workdir");
    CHECK(ctest_zombies() == 0);

    /* 5. zdaemon_options_init: defaults over garbage; NULL is fine. */
    zdaemon_options o;
    memset(&o, 0xa5, sizeof o);
    zdaemon_options_init(&o);
    CHECK(o.flags == 0 && o.workdir == NULL && o.pidfile == NULL && o.umask == 0);
    zdaemon_options_init(NULL);

    /* 6. Success leaves errno alone. */
    errno = 12345;
    pid_t d = zdaemonize(&(zdaemon_options){ZDAEMON_RETURN, NULL, NULL, 0});
    if (d == 0) _exit(0);
    CHECK(errno == 12345);
    CHECK(d > 0);
    if (d > 0) {
        CHECK(reap_within(d, &st, 20000) == d);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }

    /* 7. Without RETURN: the caller's process exits 1 and says why in one line. */
    char out[4096], err[4096];
    st = run_sub(sub_failing, out, sizeof out, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(out[0] == '\0');
    size_t len = strlen(err);
    CHECK(len > 1 && err[len - 1] == '\n' && strchr(err, '\n') == err + len - 1);
    CHECK(strstr(err, strerror(ENOENT)) != NULL);
    if (!(len > 1 && strchr(err, '\n') == err + len - 1)) fprintf(stderr, "  stderr was: \"%s\"\n", err);
    CHECK(reap_adopted(1) == 1); /* its failed daemon came to us */
    check_nothing_left("a failing caller process");

    /* ... and exits 0 once the daemon is set up, with _exit, after one flush. */
    st = run_sub(sub_succeeding, out, sizeof out, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strcmp(out, "before\n") == 0);
    CHECK(err[0] == '\0');
    if (strcmp(out, "before\n") != 0 || err[0]) fprintf(stderr, "  stdout \"%s\" stderr \"%s\"\n", out, err);
    CHECK(access(marker, F_OK) == -1 && errno == ENOENT);
    WAIT_UNTIL(access(daemon_pid_file, F_OK) == 0, 10000);
    char text[64];
    CHECK(read_file(daemon_pid_file, text, sizeof text) > 0);
    pid_t daemon = atoi(text);
    CHECK(daemon > 0);
    if (daemon > 0) {
        CHECK(reap_within(daemon, &st, 20000) == daemon);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    check_nothing_left("a succeeding caller process");

    kill_children();
    unlink(pidfile);
    unlink(marker);
    unlink(daemon_pid_file);
    rmdir(rootdir);
    rmdir(private_dir);
    CHECK(rmdir(dir) == 0);
    return ctest_finish("daemon_errors");
}
