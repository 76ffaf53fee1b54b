/* Proves: ZSPAWN_SETSID puts the child in a new session it leads (session and
 * process group == its pid), ZSPAWN_SETPGROUP puts it in a new process group
 * it leads inside our session, and without flags it shares our session and
 * process group. Read from /proc/<pid>/stat (field 5 pgrp, field 6 session)
 * of the running, already exec'd program. */
#include "ctest.h"

/* Fields 5 (pgrp) and 6 (session) of /proc/<pid>/stat. */
static int pgrp_session(pid_t pid, pid_t *pgrp, pid_t *sid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    if (!close_paren) return -1;
    char state;
    int ppid, pg, se;
    if (sscanf(close_paren + 2, "%c %d %d %d", &state, &ppid, &pg, &se) != 4) return -1;
    *pgrp = pg;
    *sid = se;
    return 0;
}

static void check_one(uint32_t flags, const char *name) {
    zspawn_options o;
    zspawn_options_init(&o);
    o.flags = flags;
    char *const argv[] = {"sleep", "100", NULL};
    pid_t pid = zspawn("/bin/sleep", argv, NULL, &o);
    if (pid <= 0) {
        fprintf(stderr, "%s: zspawn failed: %s\n", name, strerror(errno));
        ctest_failures++;
        return;
    }
    pid_t pg = -1, sid = -1;
    CHECK(pgrp_session(pid, &pg, &sid) == 0);
    pid_t want_pg, want_sid;
    if (flags & ZSPAWN_SETSID) {
        want_pg = pid;
        want_sid = pid;
    } else if (flags & ZSPAWN_SETPGROUP) {
        want_pg = pid;
        want_sid = getsid(0);
    } else {
        want_pg = getpgrp();
        want_sid = getsid(0);
    }
    if (pg != want_pg || sid != want_sid) {
        fprintf(stderr, "%s: child %d has pgrp %d session %d, want pgrp %d session %d\n", name,
                (int)pid, (int)pg, (int)sid, (int)want_pg, (int)want_sid);
        ctest_failures++;
    }
    /* The kernel's view agrees. */
    CHECK(getpgid(pid) == want_pg);
    CHECK(getsid(pid) == want_sid);

    CHECK(kill(pid, SIGKILL) == 0);
    int st = -1;
    CHECK(zwait(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;
    pid_t my_pg = getpgrp(), my_sid = getsid(0);

    check_one(0, "no flags");
    check_one(ZSPAWN_SETSID, "ZSPAWN_SETSID");
    check_one(ZSPAWN_SETPGROUP, "ZSPAWN_SETPGROUP");

    /* Our own session and group are unchanged. */
    CHECK(getpgrp() == my_pg);
    CHECK(getsid(0) == my_sid);

    /* Also from a process that leads its own group: ZSPAWN_SETPGROUP must still
     * give the child a new group. */
    if (getpgrp() != getpid()) {
        CHECK(setpgid(0, 0) == 0);
        check_one(ZSPAWN_SETPGROUP, "ZSPAWN_SETPGROUP from a group leader");
        check_one(0, "no flags from a group leader");
    }

    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("spawn_session");
}
