/* ZREAP_NO_HANDLER + zreap_fd() in the parent. In a plain fork child (which
 * has no watcher thread) the first call into the library runs at
 * RLIMIT_NPROC 0 (its watcher cannot start, and zreap_fd() says EAGAIN);
 * the limit is lifted and the child calls zreap_fd() again at once, then
 * makes a plain child and polls the fd without further calls (a poll loop).
 * API.md: the fd turns readable for every child (plain fork() children
 * included). A retry limited to once a second skipped that call. */
#include "ctest.h"
#include <sys/resource.h>
int main(void) {
    ctest_start();
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    int fd = zreap_fd();
    CHECK(fd >= 0);
    pid_t mid = fork();
    if (mid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
        struct rlimit lim; getrlimit(RLIMIT_NPROC, &lim);
        rlim_t soft = lim.rlim_cur;
        lim.rlim_cur = 0; setrlimit(RLIMIT_NPROC, &lim);
        errno = 0;
        if (zreap_fd() != -1 || errno != EAGAIN) _exit(3); /* no watcher here */
        lim.rlim_cur = soft; setrlimit(RLIMIT_NPROC, &lim);
        int fd2 = zreap_fd();            /* limit lifted: it can start now */
        pid_t g = fork();
        if (g == 0) _exit(5);
        int ok = ctest_readable(fd2, 3000);
        fprintf(stderr, "child: zreap_fd() %s within 3 s of its child's exit\n", ok ? "readable" : "NOT readable");
        waitpid(g, NULL, 0);
        _exit(ok ? 0 : 1);
    }
    int st = -1;
    CHECK(zwait(mid, &st, 0) == mid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return ctest_finish("reaper_watcher_retry");
}
