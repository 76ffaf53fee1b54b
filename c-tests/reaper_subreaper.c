/* Proves ZREAP_SUBREAPER: the process becomes a child subreaper (prctl reads 1),
 * a grandchild orphaned by its zspawn()ed parent is reparented to us (seen in
 * /proc with our pid as ppid) and reaped by the handler when it exits: no child and
 * no zombie is left, the stats count both reaps, zwait() delivers the tracked shell
 * and zreap_all() the orphan's exit. In the child of a plain fork(), which the
 * kernel does not make a subreaper although it keeps the library's state,
 * zreap_install(ZREAP_SUBREAPER) succeeds and makes it one. zreap_uninstall()
 * keeps the subreaper bit. */
#include "ctest.h"

static pid_t orphan;
static int orphan_seen, others_seen, orphan_status = -1;
static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    if (pid == orphan) {
        orphan_seen++;
        orphan_status = wstatus;
    } else {
        others_seen++;
    }
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    int sub = -1;
    CHECK(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub == 0);
    CHECK(zreap_install(ZREAP_SUBREAPER) == 0);
    sub = -1;
    CHECK(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub == 1);

    /* The shell prints the pid of a background cat, then exits at once; the
     * cat reads our pipe `gate` and ends when we close its write end. */
    int out[2], gate[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    zspawn_options opts;
    zspawn_options_init(&opts);
    opts.stdin_fd = gate[0];
    opts.stdout_fd = out[1];
    char *argv[] = {"sh", "-c", "exec 3<&0; cat <&3 >/dev/null & echo $!; exit 0", NULL};
    pid_t sh = zspawn("/bin/sh", argv, NULL, &opts);
    CHECK(sh > 0);
    close(out[1]);
    close(gate[0]);
    char buf[64] = {0};
    size_t len = 0;
    for (;;) {
        ssize_t r = read(out[0], buf + len, sizeof buf - 1 - len);
        if (r > 0) len += (size_t)r;
        else if (r == -1 && errno == EINTR) continue;
        else break;
    }
    close(out[0]);
    orphan = (pid_t)atoi(buf);
    CHECK(orphan > 0);

    /* The shell is gone and the sleep was reparented to us. */
    char state = 0;
    pid_t ppid = 0;
    WAIT_UNTIL(ctest_proc_stat(orphan, &state, &ppid) == 0 && ppid == getpid(), 10000);
    CHECK(ctest_proc_stat(orphan, &state, &ppid) == 0 && ppid == getpid());
    CHECK(ctest_children() >= 1);

    /* Once released it exits, and the handler reaps it. */
    close(gate[1]);
    WAIT_UNTIL(ctest_children() == 0, 20000);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);

    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reaped == 2);
    CHECK(s.tracked == 1); /* the shell: exited, not yet delivered */

    int st = -1;
    CHECK(zwait(sh, &st, 0) == sh);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(zreap_all(on_exit_cb, NULL) == 1);
    CHECK(orphan_seen == 1 && others_seen == 0);
    CHECK(WIFEXITED(orphan_status) && WEXITSTATUS(orphan_status) == 0);
    CHECK(zreap_all(on_exit_cb, NULL) == 0);

    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.reaped == 2);
    CHECK(s.reported == 2);
    CHECK(s.tracked == 0);

    pid_t forked = fork();
    if (forked == 0) {
        int before = -1, after = -1;
        prctl(PR_GET_CHILD_SUBREAPER, &before, 0, 0, 0);
        int rc = zreap_install(ZREAP_SUBREAPER);
        prctl(PR_GET_CHILD_SUBREAPER, &after, 0, 0, 0);
        if (rc != 0 || after != 1)
            fprintf(stderr, "fork child: subreaper %d, zreap_install() = %d, then subreaper %d\n", before, rc, after);
        _exit(rc == 0 && after == 1 ? 0 : 1);
    }
    int forked_status;
    CHECK(zwait(forked, &forked_status, 0) == forked);
    CHECK(WIFEXITED(forked_status) && WEXITSTATUS(forked_status) == 0);

    CHECK(zreap_uninstall() == 0);
    sub = -1;
    CHECK(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub == 1);
    return ctest_finish("reaper_subreaper");
}
