/* zspawn keeps its child stack between spawns, and a fork's child inherits a
 * copy of it. Proves: after the parent has spawned (so a kept stack exists),
 * the child of a plain fork() can zspawn + zwait children of its own, three in
 * a row (each on the kept stack); the parent still spawns afterwards; no zombie
 * is left. (A raw clone() child, which runs no fork handlers, must not call the
 * library at all: README, "Tracking without pid reuse".) */
#include "ctest.h"

/* zspawn + zwait of `exit CODE`, three times; 0 if each exit was right. */
static int spawn_three(int code) {
    char arg[32];
    snprintf(arg, sizeof arg, "exit %d", code);
    char *argv[] = {"sh", "-c", arg, NULL};
    for (int i = 0; i < 3; i++) {
        pid_t pid = zspawn("/bin/sh", argv, NULL, NULL);
        if (pid < 0) return 1;
        int status = 0;
        if (zwait(pid, &status, 0) != pid) return 2;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != code) return 3;
    }
    return 0;
}

/* Waits for `pid` (not tracked: ZREAP_OWN leaves it to waitpid) and says how
 * it ended; 1 if it exited 0. */
static int ended_well(pid_t pid, const char *what) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        fprintf(stderr, "%s: waitpid: %s\n", what, strerror(errno));
        return 0;
    }
    if (WIFSIGNALED(status)) fprintf(stderr, "%s: killed by signal %d\n", what, WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0) fprintf(stderr, "%s: exited %d\n", what, WEXITSTATUS(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK(spawn_three(3) == 0);

    pid_t forked = fork();
    if (forked == 0) _exit(spawn_three(4));
    CHECK(forked > 0);
    CHECK(ended_well(forked, "fork() child"));

    CHECK(spawn_three(6) == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("spawn_in_fork_children");
}
