/* Without zreap_install(), the library never reaps a child it was not asked
 * about: zspawn, zfork, zwait(pid) and zreap_fd leave the program's own fork()
 * children to its own waitpid(). (zreap_all() and zwait(-1) do reap every
 * child: without an installed reaper, every child is in scope.) */
#include "ctest.h"

static pid_t fork_exit(int code) {
    pid_t pid = fork();
    if (pid == 0) _exit(code);
    return pid;
}

int main(void) {
    ctest_start();
    pid_t mine = fork_exit(7);
    WAIT_UNTIL(ctest_zombies() == 1, 10000);
    CHECK(ctest_zombies() == 1);

    char *argv[] = {"true", NULL};
    pid_t spawned = zspawn("/bin/true", argv, NULL, NULL);
    CHECK(spawned > 0);
    int st = -1;
    CHECK(zwait(spawned, &st, 0) == spawned && WIFEXITED(st) && WEXITSTATUS(st) == 0);

    pid_t forked = zfork(NULL);
    if (forked == 0) _exit(3);
    CHECK(forked > 0);
    CHECK(zwait(forked, &st, 0) == forked && WEXITSTATUS(st) == 3);
    CHECK(zreap_fd() >= 0);
    CHECK(zwait(spawned, &st, WNOHANG) == -1 && errno == ECHILD);

    /* Our own child is still ours. */
    st = -1;
    CHECK(waitpid(mine, &st, 0) == mine && WIFEXITED(st) && WEXITSTATUS(st) == 7);

    /* zreap_all() does sweep: every child is in scope without a reaper. */
    pid_t other = fork_exit(9);
    WAIT_UNTIL(ctest_zombies() == 1, 10000);
    CHECK(zreap_all(NULL, NULL) == 1);
    CHECK(waitpid(other, &st, WNOHANG) == -1 && errno == ECHILD);
    CHECK(ctest_children() == 0);
    return ctest_finish("reaper_no_install");
}
