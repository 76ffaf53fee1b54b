/* Proves the pidfile of zdaemonize() (ZDAEMON_RETURN throughout):
 *  - when zdaemonize() returns, the pidfile exists and holds exactly the
 *    daemon's pid and "\n", and no temporary file is left next to it;
 *  - it is locked while the daemon runs: flock(LOCK_EX|LOCK_NB) on a fresh
 *    open() of it fails with EWOULDBLOCK;
 *  - a second zdaemonize() with the same pidfile fails with EEXIST, leaves the
 *    pidfile as it was (content and lock) and leaves no process behind;
 *  - a child the daemon forks, exiting with exit(), does not remove it; the
 *    daemon's own exit() does;
 *  - a stale pidfile is taken over: one nobody ever locked ("99999\n"), and one
 *    left by a daemon killed with SIGKILL (which cannot clean up);
 *  - a relative pidfile is taken from the caller's cwd, although the daemon
 *    chdirs to "/", and is removed from there at exit; when that cwd has
 *    been removed it cannot be named: -1 ENOENT, nothing forked;
 *  - the caller's own exit() (with ZDAEMON_RETURN it returns and may exit
 *    normally) does not remove the live daemon's pidfile;
 *  - it is never visible half-written: a thread that keeps reading the path
 *    while daemons start (where no pidfile was) only ever finds no file or a
 *    complete "<pid>\n", never an empty or partial one.
 * Every daemon waits for a stop file (at most 30 s, then SIGALRM kills it) and
 * then calls exit(0); this process is a child subreaper and reaps them all. */
#include "ctest_tree.h"

#include <limits.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ helpers */

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    ssize_t w = write(fd, text, strlen(text));
    close(fd);
    return w == (ssize_t)strlen(text) ? 0 : -1;
}

/* Whether the pidfile holds exactly "<pid>\n". */
static int pidfile_holds(const char *path, pid_t pid) {
    char buf[64], want[32];
    snprintf(want, sizeof want, "%d\n", (int)pid);
    ssize_t n = read_file(path, buf, sizeof buf);
    if (n < 0 || strcmp(buf, want) != 0) {
        fprintf(stderr, "  %s holds \"%s\" (read %zd), want \"%d\\n\"\n", path, n < 0 ? "" : buf, n, (int)pid);
        return 0;
    }
    return 1;
}

/* Whether someone holds a flock on `path`: our own fresh open file
 * description cannot take LOCK_EX (EWOULDBLOCK). 1 locked, 0 free, -1 error. */
static int pidfile_locked(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = flock(fd, LOCK_EX | LOCK_NB);
    int e = errno;
    close(fd); /* drops our lock if we got it */
    if (r == 0) return 0;
    return e == EWOULDBLOCK ? 1 : -1;
}

/* Names in `dir` other than "." and "..", for "no temporary file left". */
static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ daemons */

static char dir[] = "/tmp/zreap-daemon-pidfile-XXXXXX";
static char stopfile[PATH_MAX + 64], workerdone[PATH_MAX + 64];

/* In the daemon: optionally fork a worker that exit()s (running the atexit
 * handlers it inherited) and note when it is gone; then wait for the stop file
 * and exit(0), which removes the pidfile. */
static void daemon_body(int fork_worker) {
    alarm(30);
    if (fork_worker) {
        pid_t w = fork();
        if (w == 0) exit(0);
        if (w > 0 && waitpid(w, NULL, 0) == w) write_file(workerdone, "done\n");
    }
    while (access(stopfile, F_OK) != 0) ctest_sleep_ms(5);
    exit(0);
}

/* zdaemonize(RETURN, pidfile); the daemon runs daemon_body(). */
static pid_t start(const char *pidfile, int fork_worker) {
    zdaemon_options o;
    zdaemon_options_init(&o);
    o.flags = ZDAEMON_RETURN;
    o.pidfile = pidfile;
    pid_t pid = zdaemonize(&o);
    if (pid == 0) daemon_body(fork_worker);
    return pid;
}

/* Creates the stop file, reaps `pid` (exit 0 expected), removes the stop file. */
static void stop(pid_t pid) {
    CHECK(write_file(stopfile, "stop\n") == 0);
    int st = -1;
    CHECK(reap_within(pid, &st, 20000) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    unlink(stopfile);
}

/* The reader of part 8: counts what it finds at `watched`. */
static const char *watched;
static volatile int stop_reader;
static long seen_complete, seen_incomplete;
static char seen_example[64];

static void *reader(void *arg) {
    (void)arg;
    while (!stop_reader) {
        char buf[64];
        int fd = open(watched, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0) continue;
        buf[n] = '\0';
        size_t digits = strspn(buf, "0123456789");
        if (n > 1 && digits == (size_t)n - 1 && buf[n - 1] == '\n') {
            seen_complete++;
        } else {
            if (seen_incomplete++ == 0) snprintf(seen_example, sizeof seen_example, "%s", buf);
        }
    }
    return NULL;
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    CHECK(mkdtemp(dir) != NULL);
    char pidfile[PATH_MAX + 64];
    snprintf(pidfile, sizeof pidfile, "%s/d.pid", dir);
    snprintf(stopfile, sizeof stopfile, "%s/stop", dir);
    snprintf(workerdone, sizeof workerdone, "%s/worker-done", dir);

    /* 1. Content, lock, nothing else in the directory. */
    pid_t a = start(pidfile, 1);
    CHECK(a > 0);
    CHECK(pidfile_holds(pidfile, a));
    CHECK(dir_entries(dir) == 1 || access(workerdone, F_OK) == 0);
    CHECK(pidfile_locked(pidfile) == 1);

    /* The daemon's forked worker exit()ed: the pidfile is still there. */
    WAIT_UNTIL(access(workerdone, F_OK) == 0, 10000);
    CHECK(access(workerdone, F_OK) == 0);
    CHECK(pidfile_holds(pidfile, a));
    CHECK(unlink(workerdone) == 0);
    CHECK(dir_entries(dir) == 1);

    /* 2. A second instance: EEXIST, the first one's pidfile untouched, no
     * process left but the first daemon. */
    CHECK_ERR(start(pidfile, 0), EEXIST);
    CHECK(pidfile_holds(pidfile, a));
    CHECK(pidfile_locked(pidfile) == 1);
    CHECK(dir_entries(dir) == 1);
    WAIT_UNTIL(ctest_children() == 1, 10000);
    if (ctest_children() != 1)
        fprintf(stderr, "  after EEXIST: %d children of ours (%d zombies), want only the first daemon\n",
                ctest_children(), ctest_zombies());
    CHECK(ctest_children() == 1);
    CHECK(ctest_zombies() == 0);

    /* 3. exit() in the daemon removes its pidfile. */
    if (a > 0) stop(a);
    CHECK(access(pidfile, F_OK) == -1 && errno == ENOENT);
    CHECK(dir_entries(dir) == 0);

    /* 4. A stale pidfile that nobody locked is taken over. */
    CHECK(write_file(pidfile, "99999\n") == 0);
    pid_t b = start(pidfile, 0);
    CHECK(b > 0);
    CHECK(pidfile_holds(pidfile, b));
    CHECK(pidfile_locked(pidfile) == 1);
    if (b > 0) stop(b);
    CHECK(access(pidfile, F_OK) == -1 && errno == ENOENT);

    /* 5. The pidfile of a daemon killed with SIGKILL stays, unlocked, and the
     * next daemon takes it over. */
    pid_t c = start(pidfile, 0);
    CHECK(c > 0);
    if (c > 0) {
        CHECK(kill(c, SIGKILL) == 0);
        int st = -1;
        CHECK(reap_within(c, &st, 10000) == c);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
    CHECK(pidfile_holds(pidfile, c));
    CHECK(pidfile_locked(pidfile) == 0);
    pid_t d = start(pidfile, 0);
    CHECK(d > 0);
    CHECK(pidfile_holds(pidfile, d));
    CHECK(pidfile_locked(pidfile) == 1);
    if (d > 0) stop(d);
    CHECK(access(pidfile, F_OK) == -1 && errno == ENOENT);

    /* 6. A relative pidfile: relative to the caller's cwd, not the daemon's "/". */
    char rel[64], in_root[80], in_dir[PATH_MAX + 128];
    snprintf(rel, sizeof rel, "zreap-rel-%d.pid", (int)getpid());
    snprintf(in_root, sizeof in_root, "/%s", rel);
    snprintf(in_dir, sizeof in_dir, "%s/%s", dir, rel);
    char old_cwd[PATH_MAX];
    CHECK(getcwd(old_cwd, sizeof old_cwd) != NULL);
    CHECK(chdir(dir) == 0);
    CHECK(access(in_root, F_OK) == -1);
    pid_t e = start(rel, 0);
    CHECK(e > 0);
    CHECK(pidfile_holds(in_dir, e));
    CHECK(pidfile_locked(in_dir) == 1);
    CHECK(access(in_root, F_OK) == -1 && errno == ENOENT);
    if (e > 0) stop(e);
    CHECK(access(in_dir, F_OK) == -1 && errno == ENOENT);
    CHECK(access(in_root, F_OK) == -1 && errno == ENOENT);

    /* A relative pidfile while the caller's cwd has been removed: that cannot
     * be named, so -1 ENOENT before anything is forked; nothing in "/". */
    char gone[PATH_MAX + 64];
    snprintf(gone, sizeof gone, "%s/gone", dir);
    CHECK(mkdir(gone, 0755) == 0);
    CHECK(chdir(gone) == 0);
    CHECK(rmdir(gone) == 0);
    errno = 0;
    pid_t g = start(rel, 0);
    CHECK(g == -1 && errno == ENOENT);
    if (g != -1 || errno != ENOENT) fprintf(stderr, "  with the cwd removed: %d, errno %d\n", (int)g, errno);
    if (g > 0) stop(g);
    CHECK(access(in_root, F_OK) == -1 && errno == ENOENT);
    CHECK(ctest_children() == 0);
    CHECK(chdir(old_cwd) == 0);

    /* 7. The caller's exit() leaves the live daemon's pidfile alone. The caller
     * is a subprocess (not a subreaper), so the daemon comes to us. */
    int report[2];
    CHECK(pipe2(report, O_CLOEXEC) == 0);
    pid_t s = fork();
    if (s == 0) {
        close(report[0]);
        pid_t f = start(pidfile, 0);
        if (write(report[1], &f, sizeof f) != sizeof f) _exit(3);
        exit(f > 0 ? 0 : 2); /* runs the atexit handlers */
    }
    close(report[1]);
    pid_t f = -1;
    CHECK(read(report[0], &f, sizeof f) == sizeof f);
    close(report[0]);
    int st = -1;
    CHECK(s > 0 && reap_within(s, &st, 20000) == s);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(f > 0);
    if (f > 0) {
        char state;
        pid_t ppid = 0;
        WAIT_UNTIL(ctest_proc_stat(f, &state, &ppid) == 0 && ppid == getpid(), 10000);
        CHECK(ppid == getpid());
        CHECK(pidfile_holds(pidfile, f));
        CHECK(pidfile_locked(pidfile) == 1);
        stop(f);
        CHECK(access(pidfile, F_OK) == -1 && errno == ENOENT);
    }

    /* 8. Never visible half-written, also when no pidfile existed before. */
    watched = pidfile;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
    for (int i = 0; i < 200; i++) {
        unlink(pidfile);
        pid_t g = start(pidfile, 0);
        CHECK(g > 0);
        if (g <= 0) break;
        kill(g, SIGKILL);
        st = -1;
        CHECK(reap_within(g, &st, 10000) == g);
    }
    stop_reader = 1;
    CHECK(pthread_join(t, NULL) == 0);
    if (seen_incomplete)
        fprintf(stderr, "  a reader found the pidfile incomplete %ld times (e.g. \"%s\"), complete %ld times\n",
                seen_incomplete, seen_example, seen_complete);
    CHECK(seen_incomplete == 0);
    CHECK(seen_complete > 0);

    CHECK(kill_children() == 0);
    CHECK(ctest_zombies() == 0);
    unlink(pidfile);
    unlink(stopfile);
    unlink(workerdone);
    CHECK(rmdir(dir) == 0);
    return ctest_finish("daemon_pidfile");
}
