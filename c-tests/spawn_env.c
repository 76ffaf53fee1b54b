/* Proves: envp NULL gives the child the *current* environment (a setenv()
 * made just before is seen), an explicit envp replaces it completely (also an
 * empty one), ZSPAWN_SEARCH_PATH looks the name up in $PATH like execvp (in
 * order, skipping a non-executable match, EACCES when that is the only match,
 * ENOENT when there is none), and without the flag a bare name is not searched. */
#include "ctest_tree.h"

#include <limits.h>
#include <poll.h>
#include <sys/stat.h>

/* Runs a program with stdout to a pipe; returns its wait status (or -1) and
 * puts its output into out. */
static int run_capture(const char *path, char *const argv[], char *const envp[], uint32_t flags,
                       char *out, size_t cap) {
    int p[2];
    out[0] = '\0';
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    zspawn_options o;
    zspawn_options_init(&o);
    o.flags = flags;
    o.stdout_fd = p[1];
    pid_t pid = zspawn(path, argv, envp, &o);
    int err = errno;
    close(p[1]);
    if (pid <= 0) {
        close(p[0]);
        fprintf(stderr, "zspawn(%s) failed: %s\n", path, strerror(err));
        return -1;
    }
    ssize_t n = read_until_eof(p[0], out, cap);
    close(p[0]);
    int st = -1;
    if (zwait(pid, &st, 0) != pid) return -1;
    return n < 0 ? -1 : st;
}

static void write_file(const char *path, const char *data, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, data, strlen(data)) == (ssize_t)strlen(data));
    CHECK(close(fd) == 0);
    CHECK(chmod(path, mode) == 0);
}

#define EXPECT_OUTPUT(st, out, want)                                                   \
    do {                                                                               \
        if (!((st) == 0 && strcmp((out), (want)) == 0)) {                              \
            fprintf(stderr, "%s:%d: status 0x%x output \"%s\", want status 0 output \"%s\"\n", \
                    __FILE__, __LINE__, (st), (out), (want));                          \
            ctest_failures++;                                                          \
        }                                                                              \
    } while (0)

static int exit_code_of(const char *name, uint32_t flags) {
    char *const argv[] = {(char *)name, NULL};
    zspawn_options o;
    zspawn_options_init(&o);
    o.flags = flags;
    pid_t pid = zspawn(name, argv, NULL, &o);
    if (pid <= 0) {
        fprintf(stderr, "zspawn(%s) failed: %s\n", name, strerror(errno));
        return -1;
    }
    int st = -1;
    if (zwait(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
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
    char out[4096];
    int st;

    /* envp NULL: the current environment, including a change made just now. */
    char *const echo_t[] = {"sh", "-c", "echo \"[$ZREAP_T]\"", NULL};
    CHECK(setenv("ZREAP_T", "1", 1) == 0);
    st = run_capture("/bin/sh", echo_t, NULL, 0, out, sizeof out);
    EXPECT_OUTPUT(st, out, "[1]\n");
    CHECK(setenv("ZREAP_T", "second value", 1) == 0);
    st = run_capture("/bin/sh", echo_t, NULL, 0, out, sizeof out);
    EXPECT_OUTPUT(st, out, "[second value]\n");
    CHECK(unsetenv("ZREAP_T") == 0);
    st = run_capture("/bin/sh", echo_t, NULL, 0, out, sizeof out);
    EXPECT_OUTPUT(st, out, "[]\n");
    CHECK(setenv("ZREAP_T", "1", 1) == 0);

    /* An explicit envp replaces the environment entirely. */
    char *const env_argv[] = {"env", NULL};
    char *const foo_env[] = {"FOO=bar", NULL};
    st = run_capture("/usr/bin/env", env_argv, foo_env, 0, out, sizeof out);
    EXPECT_OUTPUT(st, out, "FOO=bar\n");
    char *const two_env[] = {"A=1", "B=two words", NULL};
    st = run_capture("/usr/bin/env", env_argv, two_env, 0, out, sizeof out);
    EXPECT_OUTPUT(st, out, "A=1\nB=two words\n");
    char *const empty_env[] = {NULL};
    st = run_capture("/usr/bin/env", env_argv, empty_env, 0, out, sizeof out);
    EXPECT_OUTPUT(st, out, "");
    /* ...and our own environment is untouched by it. */
    CHECK(getenv("ZREAP_T") != NULL && strcmp(getenv("ZREAP_T"), "1") == 0);
    CHECK(getenv("FOO") == NULL);

    /* From here on, work in an empty directory so a bare name cannot be found in
     * the cwd by accident. */
    char cwd0[PATH_MAX];
    CHECK(getcwd(cwd0, sizeof cwd0) != NULL);
    char dir[] = "/tmp/zreap-env-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char d1[300], d2[300], d3[300];
    snprintf(d1, sizeof d1, "%s/d1", dir);
    snprintf(d2, sizeof d2, "%s/d2", dir);
    snprintf(d3, sizeof d3, "%s/empty", dir);
    CHECK(mkdir(d1, 0755) == 0 && mkdir(d2, 0755) == 0 && mkdir(d3, 0755) == 0);
    CHECK(chdir(d3) == 0);

    /* SEARCH_PATH finds "sh" in $PATH; without it "sh" is not searched. */
    char *const sh5[] = {"sh", "-c", "exit 5", NULL};
    zspawn_options o;
    zspawn_options_init(&o);
    o.flags = ZSPAWN_SEARCH_PATH;
    pid_t pid = zspawn("sh", sh5, NULL, &o);
    CHECK(pid > 0);
    st = -1;
    CHECK(pid > 0 && zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 5);
    int fds1 = ctest_open_fds();
    CHECK_ERR(zspawn("sh", sh5, NULL, NULL), ENOENT);
    zspawn_options_init(&o);
    CHECK_ERR(zspawn("sh", sh5, NULL, &o), ENOENT);
    CHECK(ctest_children() == 0 && ctest_zombies() == 0 && ctest_open_fds() == fds1);

    /* $PATH is really searched, in order, like execvp. */
    char p1[400], p2[400], newpath[8192];
    snprintf(p1, sizeof p1, "%s/zreap-prog", d1);
    snprintf(p2, sizeof p2, "%s/zreap-prog", d2);
    const char *oldpath = getenv("PATH");
    char saved_path[4096];
    snprintf(saved_path, sizeof saved_path, "%s", oldpath ? oldpath : "/usr/bin:/bin");
    snprintf(newpath, sizeof newpath, "%s:%s:%s", d1, d2, saved_path);
    CHECK(setenv("PATH", newpath, 1) == 0);

    write_file(p2, "#!/bin/sh\nexit 9\n", 0755);
    CHECK(exit_code_of("zreap-prog", ZSPAWN_SEARCH_PATH) == 9);
    write_file(p1, "#!/bin/sh\nexit 8\n", 0755);
    CHECK(exit_code_of("zreap-prog", ZSPAWN_SEARCH_PATH) == 8); /* first match wins */
    CHECK(chmod(p1, 0644) == 0);
    CHECK(exit_code_of("zreap-prog", ZSPAWN_SEARCH_PATH) == 9); /* non-executable skipped */
    CHECK(unlink(p2) == 0);
    char *const prog[] = {"zreap-prog", NULL};
    zspawn_options_init(&o);
    o.flags = ZSPAWN_SEARCH_PATH;
    CHECK_ERR(zspawn("zreap-prog", prog, NULL, &o), EACCES); /* only a non-executable match */
    CHECK(unlink(p1) == 0);
    CHECK_ERR(zspawn("zreap-prog", prog, NULL, &o), ENOENT);
    CHECK_ERR(zspawn("zreap-no-such-program-anywhere", prog, NULL, &o), ENOENT);
    CHECK(ctest_children() == 0 && ctest_zombies() == 0 && ctest_open_fds() == fds1);

    /* A name with a slash is not searched, even with the flag: dir/d2/zreap-prog
     * exists and dir is in $PATH, but the cwd is dir/empty. */
    write_file(p2, "#!/bin/sh\nexit 9\n", 0755);
    snprintf(newpath, sizeof newpath, "%s:%s", dir, saved_path);
    CHECK(setenv("PATH", newpath, 1) == 0);
    CHECK_ERR(zspawn("d2/zreap-prog", prog, NULL, &o), ENOENT);
    CHECK(chdir(dir) == 0);
    CHECK(exit_code_of("d2/zreap-prog", ZSPAWN_SEARCH_PATH) == 9); /* relative to the cwd */

    CHECK(setenv("PATH", saved_path, 1) == 0);
    CHECK(chdir(cwd0) == 0);
    unlink(p2);
    rmdir(d1);
    rmdir(d2);
    rmdir(d3);
    CHECK(rmdir(dir) == 0);

    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_open_fds() == fds0);
    return ctest_finish("spawn_env");
}
