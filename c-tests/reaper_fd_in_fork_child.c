/* Proves that zreap_fd() in the child of a plain fork() is the child's own from
 * its first call into the library, under the same number, in both NO_HANDLER
 * and handler modes (ZREAP_OWN):
 * - the child's first call (zspawn) makes the fd its own: it is no longer the
 *   parent's file (kcmp, where the kernel has it), zreap_fd() returns the same
 *   number, and it turns readable when the child's own tracked child exits;
 * - the child's zreap_all() reports that child alone, with its status;
 * - the parent's tracked child exiting meanwhile does not make the child's fd
 *   readable, and the parent's zreap_all() reports its own child once and never
 *   the child's. */
#include "ctest.h"

#include <poll.h>
#include <sys/syscall.h>

#ifndef KCMP_FILE
#define KCMP_FILE 0
#endif

static pid_t reported[8];
static int reported_status[8], nreported;
static void record(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    if (nreported < 8) {
        reported[nreported] = pid;
        reported_status[nreported] = wstatus;
    }
    nreported++;
}

static pid_t spawn_sh(const char *script, int stdin_fd) {
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    zspawn_options o;
    zspawn_options_init(&o);
    o.stdin_fd = stdin_fd;
    return zspawn("/bin/sh", argv, NULL, &o);
}

/* The fork child: returns 0 when every check held, else the failed step. */
static int in_child(pid_t parent, int fd, int go_read, int done_write) {
    pid_t mine = spawn_sh("exit 9", -1);
    if (mine <= 0) return 10;
    if (zreap_fd() != fd) return 11;
    long same = syscall(SYS_kcmp, parent, getpid(), KCMP_FILE, fd, fd);
    if (same == 0) return 12; /* still the parent's file */
    if (!ctest_readable(fd, 10000)) return 13;
    nreported = 0;
    if (zreap_all(record, NULL) != 1) return 14;
    if (reported[0] != mine || !WIFEXITED(reported_status[0]) || WEXITSTATUS(reported_status[0]) != 9) return 15;
    /* Let the parent's child exit, and see that our fd stays quiet. */
    char b = 'x';
    if (write(done_write, &b, 1) != 1) return 16;
    if (read(go_read, &b, 1) != 1) return 17;
    if (ctest_readable(fd, 300)) return 18;
    if (zreap_all(record, NULL) != 0) return 19;
    return 0;
}

static void run(unsigned flags, const char *what) {
    CHECK(zreap_install(flags) == 0);
    int fd = zreap_fd();
    CHECK(fd >= 0);
    int hold[2], go[2], done[2];
    CHECK(pipe2(hold, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0 && pipe2(done, O_CLOEXEC) == 0);
    pid_t theirs = spawn_sh("read x; exit 4", hold[0]);
    CHECK(theirs > 0);
    close(hold[0]);

    pid_t child = fork();
    if (child == 0) {
        close(hold[1]);
        close(go[1]);
        close(done[0]);
        _exit(in_child(getppid(), fd, go[0], done[1]));
    }
    CHECK(child > 0);
    close(go[0]);
    close(done[1]);
    char b;
    CHECK(read(done[0], &b, 1) == 1);
    /* The parent's tracked child exits now; the fork child watches its fd. */
    close(hold[1]);
    CHECK(ctest_readable(fd, 10000));
    nreported = 0;
    int n = 0;
    for (int i = 0; i < 100 && nreported == 0; i++) {
        n += zreap_all(record, NULL);
        if (nreported == 0) ctest_sleep_ms(10);
    }
    CHECK(n == 1 && nreported == 1);
    CHECK(reported[0] == theirs && WIFEXITED(reported_status[0]) && WEXITSTATUS(reported_status[0]) == 4);
    CHECK(write(go[1], "x", 1) == 1);
    int st = -1;
    CHECK(waitpid(child, &st, 0) == child); /* a plain fork child: not tracked */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "%s: the fork child failed at step %d (status 0x%x)\n", what, WEXITSTATUS(st), st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(zreap_all(record, NULL) == 0);
    close(go[1]);
    close(done[0]);
    CHECK(zreap_uninstall() == 0);
}

int main(void) {
    ctest_start();
    run(ZREAP_OWN | ZREAP_NO_HANDLER, "NO_HANDLER");
    run(ZREAP_OWN, "handler");
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_fd_in_fork_child");
}
