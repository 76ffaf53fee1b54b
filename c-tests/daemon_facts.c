/* Proves what a daemon made by zdaemonize() looks like from the inside. The
 * daemon writes its facts to a file (no fd is kept open to report them, so
 * nothing we measure is disturbed) and _exit()s; this process, a child
 * subreaper, adopts the daemon, reaps it and checks:
 *  - defaults: its parent is us (the nearest subreaper), it is in a new
 *    session that it does not lead (sid != pid, sid != ours) and has no
 *    controlling tty, cwd "/", umask 0, fds 0-2 on /dev/null and no other fd
 *    open (the caller had an inheritable fd, close-on-exec pipes and the
 *    library's own fds open), an empty signal mask although the caller blocked
 *    SIGINT, no handler left (SIGUSR1 had one) and exactly the caller's ignored
 *    signals still ignored (SIGUSR2); and, after those facts are taken, a
 *    zspawn() there starts a keeper of the daemon's own (a second thread);
 *  - workdir + umask 022 + pidfile: cwd is the workdir, umask 022, the only fd
 *    besides 0-2 is the pidfile (its lock), a SIGHUP the caller ignores stays
 *    ignored, and exit() removes the pidfile;
 *  - KEEP_STDIO|NO_CHDIR|KEEP_FDS with umask -1: every fd of the caller is
 *    still open on the same file (stdout/stderr are our pipes), no report socket
 *    leaks in, cwd and umask are the caller's;
 *  - the intermediate is collected: no zombie and no other child is left. */
#include "ctest_tree.h"

#include <limits.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ helpers */

/* The SigXxx mask line of /proc/<self>/status as a number. */
static unsigned long long sig_mask(const char *key) {
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    unsigned long long v = ~0ULL;
    size_t klen = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') v = strtoull(line + klen + 1, NULL, 16);
    if (f) fclose(f);
    return v;
}

#define SIGBIT(s) (1ULL << ((s) - 1))

/* The signals a program can handle: glibc keeps 32 and 33 (between SIGSYS and
 * SIGRTMIN) for itself, with handlers of its own that sigaction() cannot see. */
static unsigned long long user_signals(void) {
    unsigned long long m = 0;
    for (int s = 1; s <= 64; s++)
        if (s < 32 || (s >= SIGRTMIN && s <= SIGRTMAX)) m |= SIGBIT(s);
    return m;
}

/* One open fd and what /proc/self/fd/N points to. */
struct fdinfo {
    int fd;
    char target[PATH_MAX];
};

/* The open fds of this process, except the one used to list them. */
static int list_fds(struct fdinfo *out, int cap) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d)) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, out[n].target, sizeof out[n].target - 1);
        out[n].target[len < 0 ? 0 : len] = '\0';
        out[n].fd = fd;
        n++;
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ the daemon side */

/* Everything the daemon reports. */
struct facts {
    pid_t pid, ppid, sid, pgid;
    int tty_nr;
    char cwd[PATH_MAX];
    unsigned umask;
    struct fdinfo fds[64];
    int nfds;
    unsigned long long sigblk, sigign, sigcgt;
    int threads_after_spawn;
};

/* The threads of this process. */
static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (isdigit((unsigned char)e->d_name[0])) n++;
    closedir(d);
    return n;
}

/* In the daemon: gathers its facts first (the fd list before anything else is
 * opened), then writes them to `out` through a temporary file and rename(), so
 * the file is complete whenever it exists. */
static void write_facts(const char *out) {
    static struct facts f;
    memset(&f, 0, sizeof f);
    f.nfds = list_fds(f.fds, 64);
    f.pid = getpid();
    f.ppid = getppid();
    f.sid = getsid(0);
    f.pgid = getpgid(0);
    if (!getcwd(f.cwd, sizeof f.cwd)) strcpy(f.cwd, "?");
    mode_t m = umask(0);
    umask(m);
    f.umask = (unsigned)m;
    f.sigblk = sig_mask("SigBlk");
    f.sigign = sig_mask("SigIgn");
    f.sigcgt = sig_mask("SigCgt");
    char stat[1024];
    f.tty_nr = -1;
    if (read_file("/proc/self/stat", stat, sizeof stat) > 0) {
        char *p = strrchr(stat, ')');
        char st;
        int pp, pg, se, tty;
        if (p && sscanf(p + 2, "%c %d %d %d %d", &st, &pp, &pg, &se, &tty) == 5) f.tty_nr = tty;
    }
    /* Last, so that the facts above do not see it: the daemon is a process of
     * its own, whose first tracked child starts a keeper of its own. */
    char *argv[] = {"true", NULL};
    pid_t child = zspawn("/bin/true", argv, NULL, NULL);
    int status;
    f.threads_after_spawn = child > 0 && zwait(child, &status, 0) == child ? count_threads() : -1;
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ssize_t w = write(fd, &f, sizeof f);
    close(fd);
    if (w == (ssize_t)sizeof f) rename(tmp, out);
}

/* ------------------------------------------------------------ the caller side */

enum ending { END_EXIT, END__EXIT };

/* Daemonizes with `o` (ZDAEMON_RETURN is added); the daemon writes its facts to
 * `out` and ends with exit(0) or _exit(0). Reaps the daemon and loads the
 * facts into *f. Returns 0, or -1 after a failed check. */
static int run_daemon(zdaemon_options *o, const char *out, enum ending how, struct facts *f) {
    o->flags |= ZDAEMON_RETURN;
    unlink(out);
    pid_t pid = zdaemonize(o);
    if (pid == 0) {
        alarm(30); /* bounded even if something goes wrong in here */
        write_facts(out);
        if (how == END_EXIT) exit(0);
        _exit(0);
    }
    CHECK(pid > 0);
    if (pid <= 0) return -1;
    /* The intermediate is gone and the daemon is our child already. */
    char state;
    pid_t ppid = 0;
    CHECK(ctest_proc_stat(pid, &state, &ppid) == 0 && ppid == getpid());
    int st = -1;
    CHECK(reap_within(pid, &st, 20000) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    memset(f, 0, sizeof *f);
    int fd = open(out, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, f, sizeof *f) : -1;
    if (fd >= 0) close(fd);
    CHECK(n == (ssize_t)sizeof *f);
    if (n != (ssize_t)sizeof *f) return -1;
    CHECK(f->pid == pid);
    /* Nothing else of ours is alive or a zombie: the intermediate was collected. */
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    return 0;
}

static const char *find_fd(const struct facts *f, int fd) {
    for (int i = 0; i < f->nfds; i++)
        if (f->fds[i].fd == fd) return f->fds[i].target;
    return NULL;
}

static void print_fds(const char *what, const struct facts *f) {
    fprintf(stderr, "  %s: %d fds:", what, f->nfds);
    for (int i = 0; i < f->nfds; i++) fprintf(stderr, " %d=%s", f->fds[i].fd, f->fds[i].target);
    fprintf(stderr, "\n");
}

/* The checks every daemon passes, whatever the options. */
static void check_daemon_basics(const struct facts *f, unsigned long long caller_ign) {
    CHECK(f->ppid == getpid()); /* reparented to the nearest subreaper: us */
    CHECK(f->sid != f->pid);    /* not a session leader: can never get a tty */
    CHECK(f->sid != getsid(0)); /* but in a session of its own */
    CHECK(f->pgid != getpgid(0));
    CHECK(f->tty_nr == 0);
    CHECK(f->sigblk == 0);
    CHECK((f->sigcgt & user_signals()) == 0); /* SIGUSR1's handler is gone */
    if (f->sigcgt & user_signals()) fprintf(stderr, "  daemon SigCgt %llx\n", f->sigcgt);
    CHECK(f->sigign == caller_ign);
    CHECK(f->sigign & SIGBIT(SIGUSR2));
    CHECK(!(f->sigign & SIGBIT(SIGUSR1)));
    CHECK(f->threads_after_spawn >= 2);
    if (f->threads_after_spawn < 2) fprintf(stderr, "  daemon threads after a zspawn: %d\n", f->threads_after_spawn);
}

static void on_usr1(int sig) { (void)sig; }

int main(void) {
    ctest_start();
    (void)ctest_open_fds;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);

    char dir[] = "/tmp/zreap-daemon-facts-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char real_dir[PATH_MAX];
    CHECK(realpath(dir, real_dir) != NULL);
    char out[PATH_MAX + 64], workdir[PATH_MAX + 64], pidfile[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/facts", real_dir);
    snprintf(workdir, sizeof workdir, "%s/work", real_dir);
    snprintf(pidfile, sizeof pidfile, "%s/facts.pid", real_dir);
    CHECK(mkdir(workdir, 0755) == 0);

    /* The caller's state the daemon must not inherit: a handler, a blocked
     * signal, a umask, a cwd, an inheritable fd and close-on-exec pipes. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    CHECK(sigprocmask(SIG_BLOCK, &block, NULL) == 0);
    umask(077);
    CHECK(chdir(real_dir) == 0);
    int inheritable = open("/dev/zero", O_RDONLY);
    CHECK(inheritable > 2);
    int cloexec_pipe[2];
    CHECK(pipe2(cloexec_pipe, O_CLOEXEC) == 0);
    struct fdinfo before_library[64];
    int n_before_library = list_fds(before_library, 64);
    int reap_fd = zreap_fd();
    CHECK(reap_fd >= 0); /* the library's own fds exist too */

    struct facts f;
    zdaemon_options o;

    /* 1. Defaults. */
    unsigned long long caller_ign = sig_mask("SigIgn");
    CHECK(caller_ign & SIGBIT(SIGUSR2));
    zdaemon_options_init(&o);
    if (run_daemon(&o, out, END__EXIT, &f) == 0) {
        check_daemon_basics(&f, caller_ign);
        CHECK(strcmp(f.cwd, "/") == 0);
        CHECK(f.umask == 0);
        for (int fd = 0; fd < 3; fd++) {
            const char *t = find_fd(&f, fd);
            CHECK(t && strcmp(t, "/dev/null") == 0);
        }
        CHECK(f.nfds == 3);
        if (f.nfds != 3) print_fds("defaults", &f);
    }

    /* 2. workdir, umask 022, a pidfile; SIGHUP ignored by the caller. */
    CHECK(signal(SIGHUP, SIG_IGN) != SIG_ERR);
    caller_ign = sig_mask("SigIgn");
    CHECK(caller_ign & SIGBIT(SIGHUP));
    zdaemon_options_init(&o);
    o.workdir = workdir;
    o.umask = 022;
    o.pidfile = pidfile;
    if (run_daemon(&o, out, END_EXIT, &f) == 0) {
        check_daemon_basics(&f, caller_ign);
        CHECK(f.sigign & SIGBIT(SIGHUP));
        CHECK(strcmp(f.cwd, workdir) == 0);
        CHECK(f.umask == 022);
        for (int fd = 0; fd < 3; fd++) {
            const char *t = find_fd(&f, fd);
            CHECK(t && strcmp(t, "/dev/null") == 0);
        }
        /* 0, 1, 2 and the pidfile (its lock), nothing else. */
        CHECK(f.nfds == 4);
        int pidfile_fds = 0;
        for (int i = 0; i < f.nfds; i++)
            if (f.fds[i].fd > 2 && strcmp(f.fds[i].target, pidfile) == 0) pidfile_fds++;
        CHECK(pidfile_fds == 1);
        if (f.nfds != 4 || pidfile_fds != 1) print_fds("workdir+pidfile", &f);
        /* exit() removed it. */
        CHECK(access(pidfile, F_OK) == -1 && errno == ENOENT);
    }
    CHECK(signal(SIGHUP, SIG_DFL) != SIG_ERR);

    /* 3. KEEP_STDIO | NO_CHDIR | KEEP_FDS, umask -1: all stays as it was. */
    umask(027);
    caller_ign = sig_mask("SigIgn");
    struct facts caller;
    caller.nfds = list_fds(caller.fds, 64);
    zdaemon_options_init(&o);
    o.flags = ZDAEMON_KEEP_STDIO | ZDAEMON_NO_CHDIR | ZDAEMON_KEEP_FDS;
    o.umask = -1;
    if (run_daemon(&o, out, END__EXIT, &f) == 0) {
        check_daemon_basics(&f, caller_ign);
        CHECK(strcmp(f.cwd, real_dir) == 0);
        CHECK(f.umask == 027);
        int missing = 0, sockets = 0;
        for (int i = 0; i < caller.nfds; i++) {
            /* Of the library's own fds, the reap fd keeps its number; the
             * keeper's are closed in every forked child: a daemon has its own
             * keeper, started when it first needs one. */
            int fd = caller.fds[i].fd, library = 1;
            for (int j = 0; j < n_before_library; j++)
                if (before_library[j].fd == fd) library = 0;
            if (library && fd != reap_fd) continue;
            const char *t = find_fd(&f, fd);
            if (!t || strcmp(t, caller.fds[i].target) != 0) missing++;
        }
        for (int i = 0; i < f.nfds; i++)
            if (strncmp(f.fds[i].target, "socket:", 7) == 0) sockets++;
        CHECK(missing == 0);
        CHECK(sockets == 0); /* the report socket did not stay behind */
        CHECK(find_fd(&f, inheritable) != NULL);
        CHECK(find_fd(&f, cloexec_pipe[0]) != NULL && find_fd(&f, cloexec_pipe[1]) != NULL);
        if (missing || sockets) {
            print_fds("caller", &caller);
            print_fds("KEEP_FDS daemon", &f);
        }
    }

    CHECK(kill_children() == 0);
    unlink(out);
    rmdir(workdir);
    CHECK(rmdir(real_dir) == 0);
    return ctest_finish("daemon_facts");
}
