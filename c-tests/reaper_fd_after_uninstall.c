/* zreap_fd() first asked for under zreap_install(0)'s handler keeps working
 * after zreap_uninstall(): a plain fork() child's exit turns it readable and
 * zreap_all() reports that exit. Under the handler the fd needed no internal
 * thread (the handler's passes make it readable); without it, plain
 * children's exits reach the fd through the watcher thread, which the
 * uninstall now starts. Before, the fd stayed quiet with the exit waiting. */
#include "ctest.h"
#include <poll.h>

static int reported;

static void on_exit_cb(pid_t pid, int st, void *ctx) {
    CHECK(pid == *(pid_t *)ctx && WIFEXITED(st) && WEXITSTATUS(st) == 3);
    reported++;
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(0) == 0);
    int fd = zreap_fd();
    CHECK(fd >= 0);
    CHECK(zreap_uninstall() == 0);
    pid_t pid = fork();
    if (pid == 0) _exit(3);
    CHECK(pid > 0);
    struct pollfd pfd = {fd, POLLIN, 0};
    CHECK(poll(&pfd, 1, 5000) == 1);
    CHECK(zreap_all(on_exit_cb, &pid) == 1 && reported == 1);
    CHECK(ctest_children() == 0);
    return ctest_finish("reaper_fd_after_uninstall");
}
