/* Proves ZDAEMON_WAIT_READY and zdaemon_ready():
 *  - with RETURN the caller blocks until the daemon calls zdaemon_ready(0):
 *    a marker file the daemon creates 200 ms later, just before the call,
 *    exists when zdaemonize() returns. Until then the daemon holds exactly one
 *    fd beyond 0-2 (the report socket); zdaemon_ready() closes it;
 *  - zdaemon_ready(ECONNREFUSED): the caller gets -1 ECONNREFUSED;
 *  - zdaemon_ready(EADDRINUSE) from a daemon that goes on running: the caller
 *    gets -1 EADDRINUSE while the daemon still runs (it does not wait for the
 *    daemon's exit), and the daemon is left to us;
 *  - a daemon that dies before it is ready (_exit(3), or SIGKILL): -1 ECHILD;
 *    the dead daemon comes to us (subreaper) with its own exit status;
 *  - without RETURN the caller's process exits 0 only once the daemon is
 *    ready, and exits 1 with one line on stderr when the daemon reports an
 *    error or dies first;
 *  - zdaemon_ready(-1) is EINVAL and does not use up the report; a second call
 *    returns 0 and changes nothing; calls in a process that is no daemon
 *    waiting to report (this one, a daemon made without WAIT_READY, a child
 *    the daemon forked before it was ready) return 0 and do nothing.
 * This process is a child subreaper; every daemon ends by itself or on a stop
 * file (30 s at most) and is reaped here. */
#include "ctest_tree.h"

#include <limits.h>
#include <poll.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ helpers */

/* Reaps one child, whichever, within 10 s: a daemon whose pid we were not
 * told. Returns its pid or -1. */
static pid_t reap_any(int *status) {
    for (long waited = 0; waited < 10000; waited += 5) {
        pid_t r = waitpid(-1, status, WNOHANG);
        if (r > 0) return r;
        ctest_sleep_ms(5);
    }
    return -1;
}

/* Writes `text` to `path` through a temporary file: complete once it exists. */
static void write_atomic(const char *path, const char *text) {
    char tmp[PATH_MAX + 80];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ssize_t w = write(fd, text, strlen(text));
    close(fd);
    if (w == (ssize_t)strlen(text)) rename(tmp, path);
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ------------------------------------------------------------ daemons */

static char dir[] = "/tmp/zreap-daemon-ready-XXXXXX";
static char marker[PATH_MAX + 64], after[PATH_MAX + 64], stopfile[PATH_MAX + 64];

enum behaviour {
    READY_LATE,        /* 200 ms, marker, zdaemon_ready(0), wait for stop, exit(0) */
    REPORT_REFUSED,    /* zdaemon_ready(ECONNREFUSED), _exit(5) */
    REPORT_ADDRINUSE,  /* zdaemon_ready(EADDRINUSE), _exit(5) */
    REPORT_AND_RUN,    /* zdaemon_ready(EADDRINUSE), wait for stop, exit(0) */
    DIE_EARLY,         /* _exit(3) */
    KILLED_EARLY,      /* SIGKILL */
    CALLS,             /* zdaemon_ready(-1), (0), (EIO): results to `after`, _exit(0) */
    CHILD_CALLS,       /* a forked child calls zdaemon_ready(EIO); then (0), _exit(0) */
};

static void daemon_body(enum behaviour b) {
    char text[256];
    alarm(30);
    switch (b) {
    case READY_LATE: {
        ctest_sleep_ms(200);
        snprintf(text, sizeof text, "%d %d\n", (int)getpid(), ctest_open_fds());
        write_atomic(marker, text);
        errno = 0;
        int r = zdaemon_ready(0);
        snprintf(text, sizeof text, "%d %d %d\n", r, errno, ctest_open_fds());
        write_atomic(after, text);
        while (access(stopfile, F_OK) != 0) ctest_sleep_ms(5);
        exit(0);
    }
    case REPORT_REFUSED:
        zdaemon_ready(ECONNREFUSED);
        _exit(5);
    case REPORT_ADDRINUSE:
        zdaemon_ready(EADDRINUSE);
        _exit(5);
    case REPORT_AND_RUN:
        zdaemon_ready(EADDRINUSE);
        while (access(stopfile, F_OK) != 0) ctest_sleep_ms(5);
        exit(0);
    case DIE_EARLY:
        _exit(3);
    case KILLED_EARLY:
        raise(SIGKILL);
        _exit(4);
    case CALLS: {
        errno = 0;
        int r0 = zdaemon_ready(-1), e0 = errno;
        int r1 = zdaemon_ready(0);
        errno = 777;
        int r2 = zdaemon_ready(EIO), e2 = errno;
        snprintf(text, sizeof text, "%d %d %d %d %d\n", r0, e0, r1, r2, e2);
        write_atomic(after, text);
        _exit(0);
    }
    case CHILD_CALLS: {
        pid_t c = fork();
        if (c == 0) _exit(zdaemon_ready(EIO) == 0 ? 0 : 1);
        int st = -1;
        if (c > 0) waitpid(c, &st, 0);
        zdaemon_ready(0);
        _exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 6);
    }
    }
    _exit(7);
}

static pid_t start(uint32_t flags, enum behaviour b) {
    zdaemon_options o;
    zdaemon_options_init(&o);
    o.flags = flags;
    pid_t pid = zdaemonize(&o);
    if (pid == 0) daemon_body(b);
    return pid;
}

/* The daemon of case `b` reported an error or died; it is our child now:
 * reap it and check how it ended. */
static void reap_failed(int want_exit, int want_signal) {
    int st = -1;
    CHECK(reap_any(&st) > 0);
    if (want_signal) CHECK(WIFSIGNALED(st) && WTERMSIG(st) == want_signal);
    else CHECK(WIFEXITED(st) && WEXITSTATUS(st) == want_exit);
}

static enum behaviour sub_behaviour;

/* Runs zdaemonize(WAIT_READY) without RETURN in a subprocess with stderr on a
 * pipe; returns the subprocess's wait status and its stderr. */
static int run_sub(enum behaviour b, char *err, size_t cap) {
    int e[2];
    if (pipe2(e, O_CLOEXEC) != 0) return -1;
    sub_behaviour = b;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(e[1], 2);
        start(ZDAEMON_WAIT_READY, sub_behaviour);
        _exit(98); /* not reached: without RETURN the caller's process exits */
    }
    close(e[1]);
    CHECK(read_until_eof(e[0], err, cap) >= 0);
    close(e[0]);
    int st = -1;
    CHECK(pid > 0 && reap_within(pid, &st, 20000) == pid);
    return st;
}

static int one_line(const char *s) {
    size_t len = strlen(s);
    return len > 1 && s[len - 1] == '\n' && strchr(s, '\n') == s + len - 1;
}

int main(void) {
    ctest_start();
    (void)ctest_zombies;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(marker, sizeof marker, "%s/marker", dir);
    snprintf(after, sizeof after, "%s/after", dir);
    snprintf(stopfile, sizeof stopfile, "%s/stop", dir);
    char text[256];
    int st;

    /* 1. The caller waits for zdaemon_ready(0). */
    long t0 = now_ms();
    pid_t d = start(ZDAEMON_WAIT_READY | ZDAEMON_RETURN, READY_LATE);
    long waited = now_ms() - t0;
    CHECK(d > 0);
    CHECK(access(marker, F_OK) == 0); /* made just before zdaemon_ready() */
    CHECK(waited >= 190);
    int mpid = -1, fds_before = -1;
    CHECK(read_file(marker, text, sizeof text) > 0 && sscanf(text, "%d %d", &mpid, &fds_before) == 2);
    CHECK(mpid == d);
    CHECK(fds_before == 4); /* 0, 1, 2 and the report socket */
    WAIT_UNTIL(access(after, F_OK) == 0, 10000);
    int r = -2, e = -2, fds_after = -1;
    CHECK(read_file(after, text, sizeof text) > 0 && sscanf(text, "%d %d %d", &r, &e, &fds_after) == 3);
    CHECK(r == 0 && e == 0);
    CHECK(fds_after == 3); /* the report socket is closed */
    write_atomic(stopfile, "stop\n");
    if (d > 0) {
        st = -1;
        CHECK(reap_within(d, &st, 20000) == d);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    unlink(marker);
    unlink(after);
    unlink(stopfile);

    /* 2. The daemon reports an error. It then exits at once; we are its
     * subreaper, and zdaemonize() has collected it: no child, no zombie. */
    CHECK_ERR(start(ZDAEMON_WAIT_READY | ZDAEMON_RETURN, REPORT_REFUSED), ECONNREFUSED);
    CHECK(ctest_children() == 0);

    /* ... and goes on running until the stop file exists: zdaemonize() has
     * returned before that, leaving the running daemon to us. */
    CHECK_ERR(start(ZDAEMON_WAIT_READY | ZDAEMON_RETURN, REPORT_AND_RUN), EADDRINUSE);
    CHECK(ctest_children() == 1);
    write_atomic(stopfile, "stop\n");
    reap_failed(0, 0);
    unlink(stopfile);
    CHECK(ctest_children() == 0);

    /* 3. The daemon dies before it is ready. */
    CHECK_ERR(start(ZDAEMON_WAIT_READY | ZDAEMON_RETURN, DIE_EARLY), ECHILD);
    reap_failed(3, 0);
    CHECK_ERR(start(ZDAEMON_WAIT_READY | ZDAEMON_RETURN, KILLED_EARLY), ECHILD);
    reap_failed(0, SIGKILL);
    CHECK(ctest_children() == 0);

    /* 4. Without RETURN: the caller's process exits 0 only once ready ... */
    char err[4096];
    st = run_sub(READY_LATE, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(err[0] == '\0');
    CHECK(access(marker, F_OK) == 0);
    mpid = -1;
    CHECK(read_file(marker, text, sizeof text) > 0 && sscanf(text, "%d", &mpid) == 1);
    write_atomic(stopfile, "stop\n");
    if (mpid > 0) {
        st = -1;
        CHECK(reap_within(mpid, &st, 20000) == mpid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    unlink(marker);
    unlink(after);
    unlink(stopfile);

    /* ... and 1, with one line on stderr, when the daemon dies first ... */
    st = run_sub(DIE_EARLY, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(one_line(err));
    reap_failed(3, 0);

    /* ... or reports an error (the line says which). */
    st = run_sub(REPORT_ADDRINUSE, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(one_line(err));
    CHECK(strstr(err, strerror(EADDRINUSE)) != NULL);
    if (!one_line(err) || !strstr(err, strerror(EADDRINUSE))) fprintf(stderr, "  stderr was \"%s\"\n", err);
    reap_failed(5, 0);

    /* 5. -1 is EINVAL and keeps the report for the real call; a later call
     * changes nothing. */
    d = start(ZDAEMON_WAIT_READY | ZDAEMON_RETURN, CALLS);
    CHECK(d > 0);
    WAIT_UNTIL(access(after, F_OK) == 0, 10000);
    int r0 = 0, e0 = 0, r1 = -2, r2 = -2, e2 = 0;
    CHECK(read_file(after, text, sizeof text) > 0 &&
          sscanf(text, "%d %d %d %d %d", &r0, &e0, &r1, &r2, &e2) == 5);
    CHECK(r0 == -1 && e0 == EINVAL);
    CHECK(r1 == 0);
    CHECK(r2 == 0 && e2 == 777);
    if (d > 0) {
        st = -1;
        CHECK(reap_within(d, &st, 20000) == d);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    unlink(after);

    /* ... in a daemon made without WAIT_READY, it does nothing ... */
    d = start(ZDAEMON_RETURN, CALLS);
    CHECK(d > 0);
    WAIT_UNTIL(access(after, F_OK) == 0, 10000);
    r0 = 0, e0 = 0, r1 = -2, r2 = -2, e2 = 0;
    CHECK(read_file(after, text, sizeof text) > 0 &&
          sscanf(text, "%d %d %d %d %d", &r0, &e0, &r1, &r2, &e2) == 5);
    CHECK(r0 == -1 && e0 == EINVAL);
    CHECK(r1 == 0);
    CHECK(r2 == 0 && e2 == 777);
    if (d > 0) {
        st = -1;
        CHECK(reap_within(d, &st, 20000) == d);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    unlink(after);

    /* ... and in a process that is no daemon: this one. */
    errno = 777;
    CHECK(zdaemon_ready(0) == 0 && errno == 777);
    CHECK(zdaemon_ready(EIO) == 0 && errno == 777);
    CHECK_ERR(zdaemon_ready(-1), EINVAL);

    /* 6. A child the daemon forks before it is ready is another process: its
     * zdaemon_ready(EIO) does nothing; the daemon's zdaemon_ready(0) counts. */
    errno = 0;
    d = start(ZDAEMON_WAIT_READY | ZDAEMON_RETURN, CHILD_CALLS);
    if (d == -1) fprintf(stderr, "  a child of the daemon reported for it: errno %d (%s)\n", errno, strerror(errno));
    CHECK(d > 0);
    st = -1;
    CHECK(reap_any(&st) > 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    CHECK(kill_children() == 0);
    unlink(marker);
    unlink(after);
    unlink(stopfile);
    CHECK(rmdir(dir) == 0);
    return ctest_finish("daemon_ready");
}
