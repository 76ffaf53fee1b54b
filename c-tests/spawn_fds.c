/* Proves: stdin_fd/stdout_fd/stderr_fd are dup2'ed onto 0/1/2 of the child
 * as if all at once — separate pipes, one pipe for both outputs, close-on-exec
 * pipes (the usual kind), and the orderings a naive dup2 sequence gets wrong:
 * stdout_fd=2 with stderr_fd=1 (swap), stderr_fd=1 with stdout_fd a pipe, and
 * a full rotation stdin_fd=2, stdout_fd=0, stderr_fd=1. The caller's fds stay
 * open with their flags, and no fd is leaked. */
#include "ctest_tree.h"

#include <poll.h>

#define EXPECT_STR(got, want)                                                              \
    do {                                                                                   \
        if (strcmp((got), (want)) != 0) {                                                  \
            fprintf(stderr, "%s:%d: %s is \"%s\", want \"%s\"\n", __FILE__, __LINE__, #got, \
                    (got), (want));                                                        \
            ctest_failures++;                                                              \
        }                                                                                  \
    } while (0)

static void expect_exit0(pid_t pid) {
    int st = -1;
    pid_t w = pid > 0 ? zwait(pid, &st, 0) : -1;
    if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "child %d: zwait %d status 0x%x, want exit 0\n", (int)pid, (int)w, st);
        ctest_failures++;
    }
}

/* Number of our fds without FD_CLOEXEC. */
static int inheritable_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d)) continue;
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC)) n++;
    }
    closedir(d);
    return n;
}

static char *const OUT_ERR[] = {"sh", "-c", "echo out; echo err >&2", NULL};

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
    char a_buf[256], b_buf[256];
    zspawn_options o;
    pid_t pid;

    /* 1. stdout and stderr to separate close-on-exec pipes. */
    {
        int a[2], b[2];
        CHECK(pipe2(a, O_CLOEXEC) == 0 && pipe2(b, O_CLOEXEC) == 0);
        zspawn_options_init(&o);
        o.stdout_fd = a[1];
        o.stderr_fd = b[1];
        int fds_before = ctest_open_fds();
        int inheritable_before = inheritable_fds();
        pid = zspawn("/bin/sh", OUT_ERR, NULL, &o);
        CHECK(pid > 0);
        /* Whatever the library holds while the child is tracked is close-on-exec. */
        CHECK(inheritable_fds() == inheritable_before);
        /* Our fds are still open and still close-on-exec. */
        CHECK(fcntl(a[1], F_GETFD) == FD_CLOEXEC);
        CHECK(fcntl(b[1], F_GETFD) == FD_CLOEXEC);
        close(a[1]);
        close(b[1]);
        CHECK(read_until_eof(a[0], a_buf, sizeof a_buf) >= 0);
        CHECK(read_until_eof(b[0], b_buf, sizeof b_buf) >= 0);
        EXPECT_STR(a_buf, "out\n");
        EXPECT_STR(b_buf, "err\n");
        close(a[0]);
        close(b[0]);
        expect_exit0(pid);
        CHECK(ctest_open_fds() == fds_before - 4); /* our four pipe ends are closed */
    }

    /* 2. stdin from a pipe, stdout to a pipe (cat copies one to the other). */
    {
        int in[2], out[2];
        CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
        zspawn_options_init(&o);
        o.stdin_fd = in[0];
        o.stdout_fd = out[1];
        char *const cat[] = {"cat", NULL};
        pid = zspawn("/bin/cat", cat, NULL, &o);
        CHECK(pid > 0);
        close(in[0]);
        close(out[1]);
        CHECK(write(in[1], "hello\nworld\n", 12) == 12);
        close(in[1]);
        CHECK(read_until_eof(out[0], a_buf, sizeof a_buf) >= 0);
        EXPECT_STR(a_buf, "hello\nworld\n");
        close(out[0]);
        expect_exit0(pid);
    }

    /* 3. The same pipe for stdout and stderr. */
    {
        int a[2];
        CHECK(pipe2(a, O_CLOEXEC) == 0);
        zspawn_options_init(&o);
        o.stdout_fd = a[1];
        o.stderr_fd = a[1];
        pid = zspawn("/bin/sh", OUT_ERR, NULL, &o);
        CHECK(pid > 0);
        close(a[1]);
        CHECK(read_until_eof(a[0], a_buf, sizeof a_buf) >= 0);
        EXPECT_STR(a_buf, "out\nerr\n");
        close(a[0]);
        expect_exit0(pid);
    }

    /* The remaining cases pass our own 0/1/2 as sources, so point them at pipes
     * for the duration of the spawn (no CHECK output while redirected). */
    int save0 = fcntl(0, F_DUPFD_CLOEXEC, 100);
    int save1 = fcntl(1, F_DUPFD_CLOEXEC, 100);
    int save2 = fcntl(2, F_DUPFD_CLOEXEC, 100);
    CHECK(save0 >= 0 && save1 >= 0 && save2 >= 0);
    int err_spawn;

    /* 4. Swap: stdout_fd=2, stderr_fd=1. Our 1 is pipe A, our 2 is pipe B:
     * the child's stdout must reach B and its stderr A. */
    {
        int a[2], b[2];
        CHECK(pipe2(a, O_CLOEXEC) == 0 && pipe2(b, O_CLOEXEC) == 0);
        dup2(a[1], 1);
        dup2(b[1], 2);
        zspawn_options_init(&o);
        o.stdout_fd = 2;
        o.stderr_fd = 1;
        pid = zspawn("/bin/sh", OUT_ERR, NULL, &o);
        err_spawn = errno;
        dup2(save1, 1);
        dup2(save2, 2);
        if (pid <= 0) fprintf(stderr, "swap: zspawn failed: %s\n", strerror(err_spawn));
        CHECK(pid > 0);
        close(a[1]);
        close(b[1]);
        CHECK(read_until_eof(a[0], a_buf, sizeof a_buf) >= 0);
        CHECK(read_until_eof(b[0], b_buf, sizeof b_buf) >= 0);
        EXPECT_STR(b_buf, "out\n"); /* child's stdout = our fd 2 = B */
        EXPECT_STR(a_buf, "err\n"); /* child's stderr = our fd 1 = A */
        close(a[0]);
        close(b[0]);
        expect_exit0(pid);
    }

    /* 5. stdout_fd = pipe C, stderr_fd = 1 (our 1 is pipe A): stderr must get our
     * original fd 1, not the pipe that was just put on the child's fd 1. */
    {
        int a[2], c[2];
        CHECK(pipe2(a, O_CLOEXEC) == 0 && pipe2(c, O_CLOEXEC) == 0);
        dup2(a[1], 1);
        zspawn_options_init(&o);
        o.stdout_fd = c[1];
        o.stderr_fd = 1;
        pid = zspawn("/bin/sh", OUT_ERR, NULL, &o);
        err_spawn = errno;
        dup2(save1, 1);
        if (pid <= 0) fprintf(stderr, "stderr=1: zspawn failed: %s\n", strerror(err_spawn));
        CHECK(pid > 0);
        close(a[1]);
        close(c[1]);
        CHECK(read_until_eof(c[0], a_buf, sizeof a_buf) >= 0);
        CHECK(read_until_eof(a[0], b_buf, sizeof b_buf) >= 0);
        EXPECT_STR(a_buf, "out\n"); /* from C */
        EXPECT_STR(b_buf, "err\n"); /* from A */
        close(a[0]);
        close(c[0]);
        expect_exit0(pid);
    }

    /* 6. Rotation: stdin_fd=2, stdout_fd=0, stderr_fd=1. Our 2 reads pipe I,
     * our 0 writes pipe O, our 1 writes pipe E. */
    {
        int i[2], po[2], pe[2];
        CHECK(pipe2(i, O_CLOEXEC) == 0 && pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0);
        dup2(i[0], 2);
        dup2(po[1], 0);
        dup2(pe[1], 1);
        zspawn_options_init(&o);
        o.stdin_fd = 2;
        o.stdout_fd = 0;
        o.stderr_fd = 1;
        char *const rot[] = {"sh", "-c", "read x; echo \"out:$x\"; echo \"err:$x\" >&2", NULL};
        pid = zspawn("/bin/sh", rot, NULL, &o);
        err_spawn = errno;
        dup2(save0, 0);
        dup2(save1, 1);
        dup2(save2, 2);
        if (pid <= 0) fprintf(stderr, "rotation: zspawn failed: %s\n", strerror(err_spawn));
        CHECK(pid > 0);
        close(i[0]);
        close(po[1]);
        close(pe[1]);
        CHECK(write(i[1], "hi\n", 3) == 3);
        close(i[1]);
        CHECK(read_until_eof(po[0], a_buf, sizeof a_buf) >= 0);
        CHECK(read_until_eof(pe[0], b_buf, sizeof b_buf) >= 0);
        EXPECT_STR(a_buf, "out:hi\n");
        EXPECT_STR(b_buf, "err:hi\n");
        close(po[0]);
        close(pe[0]);
        expect_exit0(pid);
    }

    /* 7. stdout_fd=1 (our real stdout) while stdin/stderr inherit: the identity case. */
    {
        int a[2];
        CHECK(pipe2(a, 0) == 0); /* not close-on-exec: the plain dup2 case */
        dup2(a[1], 1);
        close(a[1]);
        zspawn_options_init(&o);
        o.stdout_fd = 1;
        char *const echo[] = {"sh", "-c", "echo same", NULL};
        pid = zspawn("/bin/sh", echo, NULL, &o);
        err_spawn = errno;
        dup2(save1, 1);
        if (pid <= 0) fprintf(stderr, "identity: zspawn failed: %s\n", strerror(err_spawn));
        CHECK(pid > 0);
        CHECK(read_until_eof(a[0], a_buf, sizeof a_buf) >= 0);
        EXPECT_STR(a_buf, "same\n");
        close(a[0]);
        expect_exit0(pid);
    }

    close(save0);
    close(save1);
    close(save2);
    /* Our 0/1/2 are back and not close-on-exec. */
    CHECK(fcntl(0, F_GETFD) == 0 && fcntl(1, F_GETFD) == 0 && fcntl(2, F_GETFD) == 0);

    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_open_fds() == fds0);
    return ctest_finish("spawn_fds");
}
