/* zspawn() with the fd table full (RLIMIT_NOFILE reached): stdout_fd = 2
 * ("2>&1") needs no new fd in the child, as posix_spawn's adddup2 needs
 * none, so the child starts and exits 0. The library makes its own fds at
 * its first use, which comes first here. The limit is lowered in a process of
 * its own. (Not under valgrind, which keeps fds of its own.) */
#include "ctest.h"
#include <sys/resource.h>

int main(void) {
    ctest_start();
    pid_t sub = fork();
    if (sub == 0) {
        if (zreap_fd() < 0) _exit(2);
        struct rlimit rl = {64, 64};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(3);
        while (open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0) {
        }
        zspawn_options o;
        zspawn_options_init(&o);
        o.stdout_fd = 2;
        char *const t[] = {"true", NULL};
        pid_t p = zspawn("/bin/true", t, NULL, &o);
        int e = errno, st = -1;
        if (p < 0) fprintf(stderr, "full table: zspawn with stdout_fd 2 failed: %s\n", strerror(e));
        _exit(p > 0 && zwait(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1);
    }
    int st;
    CHECK(waitpid(sub, &st, 0) == sub && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return ctest_finish("spawn_full_fd_table");
}
