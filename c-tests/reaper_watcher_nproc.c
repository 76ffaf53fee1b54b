/* ZREAP_NO_HANDLER needs a watcher thread to keep zreap_fd() readable for
 * every child. When no thread can be started (RLIMIT_NPROC reached),
 * zreap_install must fail with EAGAIN and install nothing; once the limit is
 * lifted, the same call works and the fd turns readable for a plain fork()
 * child. RLIMIT_NPROC does not bind root, so the program drops to nobody. */
#include "ctest.h"

#include <poll.h>
#include <sys/resource.h>

int main(void) {
    ctest_start();
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
        perror("drop to nobody");
        return 1;
    }
    struct rlimit lim;
    CHECK(getrlimit(RLIMIT_NPROC, &lim) == 0);
    rlim_t hard = lim.rlim_max;
    lim.rlim_cur = 0;
    CHECK(setrlimit(RLIMIT_NPROC, &lim) == 0);
    CHECK_ERR(zreap_install(ZREAP_NO_HANDLER), EAGAIN);

    /* Nothing was installed: other flags are accepted, not EBUSY. */
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK(zreap_uninstall() == 0);

    lim.rlim_cur = hard;
    CHECK(setrlimit(RLIMIT_NPROC, &lim) == 0);
    CHECK(zreap_install(ZREAP_NO_HANDLER) == 0);
    pid_t child = fork();
    if (child == 0) _exit(4);
    struct pollfd pfd = {.fd = zreap_fd(), .events = POLLIN};
    CHECK(poll(&pfd, 1, 10000) == 1);
    int st = -1;
    CHECK(zwait(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 4);
    return ctest_finish("reaper_watcher_nproc");
}
