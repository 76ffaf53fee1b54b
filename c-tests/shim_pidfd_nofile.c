/* shim_pidfd_nofile.c: pidfd_open() of an exited child with exactly one fd
 * free under RLIMIT_NOFILE, then waitid(P_PIDFD). Under ZREAP_REAP=all the
 * shim has reaped the child and hands out a stand-in, which must take one fd
 * as the kernel's pidfd does (a pipe needed two: EMFILE). The output must be
 * the same with and without the shim. */
#include "ctest.h"
#include <sys/resource.h>
#include <sys/syscall.h>

int main(void) {
    ctest_start();
    pid_t c = fork();
    if (c == 0) _exit(3);
    /* Until it has exited (reaped by the shim, or a zombie without it). */
    CHECK(ctest_exited_within(c, 5000));
    ctest_sleep_ms(50);
    int next = dup(0);
    CHECK(next >= 0);
    close(next);
    /* The lowest free fd is the only one below the limit (fds open above it
     * stay open). */
    struct rlimit rl = {(rlim_t)next + 1, (rlim_t)next + 1};
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    errno = 0;
    int fd = (int)syscall(SYS_pidfd_open, c, 0);
    printf("pidfd_open with one fd free: %s\n", fd >= 0 ? "an fd" : strerror(errno));
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = fd >= 0 ? waitid(P_PIDFD, (id_t)fd, &si, WEXITED) : waitid(P_PID, (id_t)c, &si, WEXITED);
    printf("waitid: %d, exit status %d\n", rc, si.si_status);
    CHECK(fd >= 0 && rc == 0 && si.si_status == 3);
    return ctest_finish("shim_pidfd_nofile");
}
