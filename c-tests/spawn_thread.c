/* Proves: zspawn() called from a worker thread with a pdeathsig (the case the
 * library must route so the signal follows the process) behaves exactly like
 * any other zspawn(): argv, cwd, envp NULL (the current environment),
 * stdout_fd, flags, an empty signal mask and default dispositions in the
 * child, the child's own exec errno on failure with nothing left behind, a
 * direct child of this process that any thread can zwait(), and errno left
 * alone on success. Several threads spawn at the same time too. */
#include "ctest_tree.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>

struct job {
    /* in */
    const char *path;
    char *const *argv;
    zspawn_options opts;
    /* out */
    pid_t pid;
    int err;
    int errno_kept;
};

static void *spawn_in_thread(void *arg) {
    struct job *j = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* a thread that blocks everything */
    errno = EDOM;
    j->pid = zspawn(j->path, j->argv, NULL, &j->opts);
    j->err = errno;
    j->errno_kept = j->pid > 0 && errno == EDOM;
    return NULL;
}

static void run_job(struct job *j) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, spawn_in_thread, j) == 0);
    CHECK(pthread_join(t, NULL) == 0);
}

int main(void) {
    ctest_start();
    (void)ctest_sleep_ms;
    CHECK(zreap_fd() >= 0); /* the library's own fds exist before we count */
    int fds0 = ctest_open_fds();
    char cwd0[PATH_MAX];
    CHECK(getcwd(cwd0, sizeof cwd0) != NULL);

    char dir[] = "/tmp/zreap-thr-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char realdir[PATH_MAX];
    CHECK(realpath(dir, realdir) != NULL);
    CHECK(setenv("ZREAP_T", "from-parent", 1) == 0);

    /* 1. cwd, environment, argv, stdout, the child's signal state, SETPGROUP. */
    {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        char *const argv[] = {"sh", "-c",
                              "/bin/pwd; echo \"$ZREAP_T $0 $1\"; "
                              "exec grep -E '^Sig(Blk|Ign)' /proc/self/status",
                              "arg0", "arg1", NULL};
        struct job j = {.path = "/bin/sh", .argv = argv};
        zspawn_options_init(&j.opts);
        j.opts.pdeathsig = SIGTERM;
        j.opts.cwd = dir;
        j.opts.stdout_fd = p[1];
        j.opts.flags = ZSPAWN_SETPGROUP;
        run_job(&j);
        close(p[1]);
        if (j.pid <= 0) fprintf(stderr, "zspawn from a thread failed: %s\n", strerror(j.err));
        CHECK(j.pid > 0);
        CHECK(j.errno_kept);
        char out[4096], want[PATH_MAX + 256];
        CHECK(read_until_eof(p[0], out, sizeof out) >= 0);
        close(p[0]);
        snprintf(want, sizeof want,
                 "%s\nfrom-parent arg0 arg1\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
                 realdir);
        if (strcmp(out, want) != 0)
            fprintf(stderr, "child output:\n%s\nwant:\n%s\n", out, want);
        CHECK(strcmp(out, want) == 0);
        if (j.pid > 0) {
            int st = -1;
            CHECK(zwait(j.pid, &st, 0) == j.pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
    }

    /* 2. A direct child of this process, with its own process group. */
    {
        char *const argv[] = {"sleep", "100", NULL};
        struct job j = {.path = "/bin/sleep", .argv = argv};
        zspawn_options_init(&j.opts);
        j.opts.pdeathsig = SIGKILL;
        j.opts.flags = ZSPAWN_SETPGROUP;
        run_job(&j);
        CHECK(j.pid > 0);
        if (j.pid > 0) {
            char state = '?';
            pid_t ppid = -1;
            CHECK(ctest_proc_stat(j.pid, &state, &ppid) == 0 && ppid == getpid() && state != 'Z');
            CHECK(getpgid(j.pid) == j.pid);
            zreap_stats s;
            CHECK(zreap_stats_get(&s) == 0 && s.tracked >= 1);
            CHECK(kill(j.pid, SIGKILL) == 0);
            int st = -1;
            CHECK(zwait(j.pid, &st, 0) == j.pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        }
    }

    /* 3. Exec errors come back as the child's errno; nothing is left behind. */
    {
        char *const argv[] = {"x", NULL};
        struct job j = {.path = "/nonexistent-zreap/prog", .argv = argv};
        zspawn_options_init(&j.opts);
        j.opts.pdeathsig = SIGKILL;
        run_job(&j);
        CHECK(j.pid == -1 && j.err == ENOENT);
        struct job k = {.path = "/bin/true", .argv = argv};
        zspawn_options_init(&k.opts);
        k.opts.pdeathsig = SIGKILL;
        k.opts.cwd = "/etc/passwd";
        run_job(&k);
        CHECK(k.pid == -1 && k.err == ENOTDIR);
        struct job v = {.path = "/bin/true", .argv = argv};
        zspawn_options_init(&v.opts);
        v.opts.pdeathsig = SIGKILL;
        v.opts.stdout_fd = 987;
        close(987);
        run_job(&v);
        CHECK(v.pid == -1 && v.err == EBADF);
        CHECK(ctest_children() == 0);
        CHECK(ctest_zombies() == 0);
        CHECK(ctest_open_fds() == fds0);
    }

    /* 4. Eight threads spawn at once; every child is distinct and delivered. */
    {
        enum { N = 8 };
        struct job jobs[N];
        pthread_t ts[N];
        char codes[N][24]; /* any int fits: UBSan builds lose the range of i */
        char *argvs[N][4];
        for (int i = 0; i < N; i++) {
            snprintf(codes[i], sizeof codes[i], "exit %d", 10 + i);
            argvs[i][0] = "sh";
            argvs[i][1] = "-c";
            argvs[i][2] = codes[i];
            argvs[i][3] = NULL;
            memset(&jobs[i], 0, sizeof jobs[i]);
            jobs[i].path = "/bin/sh";
            jobs[i].argv = argvs[i];
            zspawn_options_init(&jobs[i].opts);
            jobs[i].opts.pdeathsig = SIGKILL;
            CHECK(pthread_create(&ts[i], NULL, spawn_in_thread, &jobs[i]) == 0);
        }
        for (int i = 0; i < N; i++) CHECK(pthread_join(ts[i], NULL) == 0);
        for (int i = 0; i < N; i++) {
            CHECK(jobs[i].pid > 0);
            if (jobs[i].pid <= 0) continue;
            int st = -1;
            pid_t w = zwait(jobs[i].pid, &st, 0);
            if (!(w == jobs[i].pid && WIFEXITED(st) && WEXITSTATUS(st) == 10 + i))
                fprintf(stderr, "job %d: zwait %d status 0x%x\n", i, (int)w, st);
            CHECK(w == jobs[i].pid && WIFEXITED(st) && WEXITSTATUS(st) == 10 + i);
        }
    }

    CHECK(rmdir(dir) == 0);
    char now[PATH_MAX];
    CHECK(getcwd(now, sizeof now) != NULL && strcmp(now, cwd0) == 0);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_open_fds() == fds0);
    return ctest_finish("spawn_thread");
}
