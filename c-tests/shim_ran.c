/* shim_ran.c: prints "ran", then forks a child that exits at once with
 * SIGCHLD at its default and never waits for it, and prints whether it is a
 * zombie a moment later ("zombie: yes" as without a shim; "zombie: no" when
 * a shim with ZREAP_REAP=all reaped it). Reaps it at the end. */
#include "ctest.h"

int main(void) {
    ctest_start();
    printf("ran\n");
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    CHECK(pid > 0);
    WAIT_UNTIL(ctest_zombies() == 1 || ctest_children() == 0, 2000);
    ctest_sleep_ms(50);
    printf("zombie: %s\n", ctest_zombies() == 1 ? "yes" : "no");
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return ctest_finish("shim_ran");
}
