/* Proves: a successful zspawn() starts the program itself as a direct,
 * tracked child — argv (argv[0] included, empty strings, spaces) arrives
 * unchanged, the returned pid is the exec'd program, zwait() delivers its exit
 * status or signal exactly once, zwait(-1) finds it, zreap_stats counts it as
 * tracked until delivered and as reported afterwards, success leaves errno
 * alone, a child the SIGCHLD handler already reaped is still delivered to
 * zwait(pid), and nothing (zombie, fd, child) is left afterwards. */
#include "ctest.h"

#include <limits.h>

static zreap_stats stats(void) {
    zreap_stats s;
    memset(&s, 0xff, sizeof s);
    CHECK(zreap_stats_get(&s) == 0);
    return s;
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;
    /* The library keeps fds of its own for its whole life (zreap_fd()'s, made on
     * first use): let them exist before counting ours, so that any change of the
     * count from here on is a leak. */
    CHECK(zreap_fd() >= 0);
    int fds0 = ctest_open_fds();
    zreap_stats s0 = stats();
    int st;

    /* argv arrives unchanged; the status is delivered by zwait(pid). */
    char *const argv_sh[] = {"/bin/sh", "-c",
                             "[ \"$0\" = zero ] && [ \"$1\" = 'a b' ] && [ \"$2\" = '' ] && "
                             "[ \"$3\" = c ] && [ $# -eq 3 ] && exit 7; exit 3",
                             "zero", "a b", "", "c", NULL};
    errno = EDOM;
    pid_t pid = zspawn("/bin/sh", argv_sh, NULL, NULL);
    CHECK(pid > 0);
    CHECK(errno == EDOM); /* success does not change errno */
    st = -1;
    errno = EDOM;
    CHECK(zwait(pid, &st, 0) == pid);
    CHECK(errno == EDOM);
    CHECK(WIFEXITED(st));
    if (WIFEXITED(st) && WEXITSTATUS(st) != 7)
        fprintf(stderr, "argv check in the child failed: exit %d\n", WEXITSTATUS(st));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    /* Delivered exactly once. */
    CHECK_ERR(zwait(pid, &st, 0), ECHILD);
    CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);

    /* A long-running child: it is the exec'd program, our direct child, tracked. */
    char *const argv_sleep[] = {"zreap-argv0-test", "100", NULL};
    pid = zspawn("/bin/sleep", argv_sleep, NULL, NULL);
    CHECK(pid > 0);
    if (pid > 0) {
        char state = '?';
        pid_t ppid = -1;
        CHECK(ctest_proc_stat(pid, &state, &ppid) == 0);
        CHECK(ppid == getpid());
        CHECK(state != 'Z');

        /* zspawn returns once the exec has replaced the image; the kernel sets
         * the new argv area a moment later, so allow it to appear. */
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        const char want[] = "zreap-argv0-test\0" "100"; /* sizeof includes final NUL */
        size_t n = 0;
        for (int tries = 0; tries < 1000; tries++) {
            FILE *f = fopen(path, "re");
            CHECK(f != NULL);
            n = f ? fread(buf, 1, sizeof buf, f) : 0;
            if (f) fclose(f);
            if (n == sizeof want || !f) break;
            ctest_sleep_ms(5);
        }
        if (n != sizeof want || memcmp(buf, want, sizeof want) != 0)
            fprintf(stderr, "cmdline of child: %zu bytes, first '%s'\n", n, n ? buf : "");
        CHECK(n == sizeof want && memcmp(buf, want, sizeof want) == 0);

        snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
        char exe[PATH_MAX], real[PATH_MAX];
        ssize_t k = readlink(path, exe, sizeof exe - 1);
        CHECK(k > 0);
        exe[k > 0 ? k : 0] = '\0';
        CHECK(realpath("/bin/sleep", real) != NULL);
        if (strcmp(exe, real) != 0) fprintf(stderr, "child exe %s, want %s\n", exe, real);
        CHECK(strcmp(exe, real) == 0);

        zreap_stats s1 = stats();
        CHECK(s1.tracked == s0.tracked + 1);

        /* Still running: WNOHANG gives 0, for the pid and for -1, and such a
         * poll leaves no fd behind. */
        int fds_poll = ctest_open_fds();
        st = -1;
        CHECK(zwait(pid, &st, WNOHANG) == 0);
        CHECK(zwait(pid, &st, WNOHANG) == 0);
        CHECK(zwait(-1, &st, WNOHANG) == 0);
        int fds_after_poll = ctest_open_fds();
        if (fds_after_poll != fds_poll)
            fprintf(stderr, "3 zwait(WNOHANG) polls of a running child: open fds %d -> %d\n",
                    fds_poll, fds_after_poll);
        CHECK(fds_after_poll == fds_poll);

        CHECK(kill(pid, SIGKILL) == 0);
        st = -1;
        CHECK(zwait(pid, &st, 0) == pid);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        zreap_stats s2 = stats();
        CHECK(s2.tracked == s0.tracked);
        CHECK(s2.reported == s1.reported + 1);
    }

    /* Two children at once, collected by zwait(-1). */
    char *const argv_3[] = {"sh", "-c", "exit 3", NULL};
    char *const argv_4[] = {"sh", "-c", "exit 4", NULL};
    pid_t a = zspawn("/bin/sh", argv_3, NULL, NULL);
    pid_t b = zspawn("/bin/sh", argv_4, NULL, NULL);
    CHECK(a > 0 && b > 0 && a != b);
    zreap_stats s3 = stats();
    CHECK(s3.tracked == s0.tracked + 2);
    int got_a = 0, got_b = 0;
    for (int i = 0; i < 2; i++) {
        st = -1;
        pid_t w = zwait(-1, &st, 0);
        if (w == a && WIFEXITED(st) && WEXITSTATUS(st) == 3) got_a++;
        else if (w == b && WIFEXITED(st) && WEXITSTATUS(st) == 4) got_b++;
        else fprintf(stderr, "zwait(-1) returned %d status 0x%x (a=%d b=%d)\n", (int)w, st, (int)a, (int)b);
    }
    CHECK(got_a == 1 && got_b == 1);
    CHECK_ERR(zwait(-1, &st, 0), ECHILD);
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);
    zreap_stats s4 = stats();
    CHECK(s4.tracked == s0.tracked);
    CHECK(s4.reported == s3.reported + 2);

    /* zwait(WNOHANG) polling finds an exit that happened meanwhile. */
    char *const argv_t[] = {"true", NULL};
    pid = zspawn("/bin/true", argv_t, NULL, NULL);
    CHECK(pid > 0);
    pid_t w = 0;
    st = -1;
    WAIT_UNTIL((w = zwait(pid, &st, WNOHANG)) != 0, 10000);
    CHECK(w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* With the SIGCHLD handler installed the child is reaped as soon as it ends,
     * and zwait(pid) still gets its status, once. */
    CHECK(zreap_install(0) == 0);
    char *const argv_6[] = {"sh", "-c", "exit 6", NULL};
    pid = zspawn("/bin/sh", argv_6, NULL, NULL);
    CHECK(pid > 0);
    WAIT_UNTIL(kill(pid, 0) == -1, 10000); /* gone: exited and reaped */
    CHECK(kill(pid, 0) == -1 && errno == ESRCH);
    st = -1;
    CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 6);
    CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);
    CHECK(zreap_uninstall() == 0);

    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_open_fds() == fds0);
    return ctest_finish("spawn_basic");
}
