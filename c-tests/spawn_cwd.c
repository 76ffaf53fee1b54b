/* Proves: opts->cwd makes the child start in that directory (absolute and
 * relative to the caller's cwd), NULL inherits the caller's cwd, and the
 * caller's own cwd is never changed by zspawn(). */
#include "ctest_tree.h"

#include <limits.h>
#include <poll.h>
#include <sys/stat.h>

/* Runs /bin/pwd with opts->cwd = cwd; returns its output (without the
 * newline) in out, or "" on failure. */
static void pwd_in(const char *cwd, char *out, size_t cap) {
    int p[2];
    out[0] = '\0';
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    zspawn_options o;
    zspawn_options_init(&o);
    o.cwd = cwd;
    o.stdout_fd = p[1];
    char *const argv[] = {"pwd", NULL};
    pid_t pid = zspawn("/bin/pwd", argv, NULL, &o);
    int err = errno;
    close(p[1]);
    if (pid <= 0) {
        fprintf(stderr, "zspawn(/bin/pwd, cwd %s): %s\n", cwd ? cwd : "NULL", strerror(err));
        ctest_failures++;
        close(p[0]);
        return;
    }
    CHECK(read_until_eof(p[0], out, cap) > 0);
    close(p[0]);
    int st = -1;
    CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    size_t n = strlen(out);
    CHECK(n > 0 && out[n - 1] == '\n');
    if (n > 0 && out[n - 1] == '\n') out[n - 1] = '\0';
}

#define EXPECT_DIR(got, want)                                                          \
    do {                                                                               \
        if (strcmp((got), (want)) != 0) {                                              \
            fprintf(stderr, "%s:%d: child ran in \"%s\", want \"%s\"\n", __FILE__, __LINE__, \
                    (got), (want));                                                    \
            ctest_failures++;                                                          \
        }                                                                              \
    } while (0)

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
    char cwd0[PATH_MAX], real0[PATH_MAX], now[PATH_MAX], out[PATH_MAX + 16];
    CHECK(getcwd(cwd0, sizeof cwd0) != NULL);
    CHECK(realpath(cwd0, real0) != NULL);

    char dir[] = "/tmp/zreap-cwd-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char realdir[PATH_MAX];
    CHECK(realpath(dir, realdir) != NULL);
    char sub[PATH_MAX], realsub[PATH_MAX + 16];
    snprintf(sub, sizeof sub, "%s/sub dir", dir);
    snprintf(realsub, sizeof realsub, "%s/sub dir", realdir);
    CHECK(mkdir(sub, 0755) == 0);

    /* Absolute cwd. */
    pwd_in(dir, out, sizeof out);
    EXPECT_DIR(out, realdir);
    pwd_in(sub, out, sizeof out);
    EXPECT_DIR(out, realsub);
    pwd_in("/", out, sizeof out);
    EXPECT_DIR(out, "/");
    /* The caller's cwd did not move. */
    CHECK(getcwd(now, sizeof now) != NULL && strcmp(now, cwd0) == 0);

    /* NULL: inherit. */
    pwd_in(NULL, out, sizeof out);
    EXPECT_DIR(out, real0);

    /* Relative cwd: relative to the caller's cwd. */
    CHECK(chdir(dir) == 0);
    pwd_in("sub dir", out, sizeof out);
    EXPECT_DIR(out, realsub);
    pwd_in(".", out, sizeof out);
    EXPECT_DIR(out, realdir);
    pwd_in(NULL, out, sizeof out);
    EXPECT_DIR(out, realdir);
    CHECK(getcwd(now, sizeof now) != NULL && strcmp(now, realdir) == 0);

    CHECK(chdir(cwd0) == 0);
    CHECK(rmdir(sub) == 0);
    CHECK(rmdir(dir) == 0);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_open_fds() == fds0);
    return ctest_finish("spawn_cwd");
}
