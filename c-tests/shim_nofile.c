/* shim_nofile.c: a program at its RLIMIT_NOFILE when the shim first needs its
 * core. Under ZREAP_REAP=all the stub loads the core at the program's first
 * fork, and loading it takes a file descriptor: the program has none left.
 * The shim must try again once it has (the next fork), not stay off for
 * good with its children left zombies.
 *
 * The program lowers its limit to 64 and opens /dev/null until it fails,
 * forks a child, closes the fds, forks 5 more children, and never waits for
 * any of them: all 6 must be reaped within 10 s, and the shim must say
 * nothing on stderr. Without argv[1] "all" (no shim) it reaps them itself. */
#include "ctest.h"

#include <sys/resource.h>

#define FILLERS 64

int main(int argc, char **argv) {
    ctest_start();
    int all = argc > 1 && strcmp(argv[1], "all") == 0;
    struct rlimit limit;
    CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    struct rlimit low = {FILLERS, limit.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    int fillers[FILLERS], filled = 0;
    while (filled < FILLERS) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) break;
        fillers[filled++] = fd;
    }
    CHECK(errno == EMFILE);
    pid_t first = fork();
    if (first == 0) _exit(0);
    CHECK(first > 0);
    for (int i = 0; i < filled; i++) close(fillers[i]);
    CHECK(setrlimit(RLIMIT_NOFILE, &limit) == 0);
    for (int i = 0; i < 5; i++) {
        pid_t child = fork();
        if (child == 0) _exit(0);
        CHECK(child > 0);
    }
    if (all) {
        WAIT_UNTIL(ctest_children() == 0, 10000);
        CHECK(ctest_children() == 0);
    } else {
        while (waitpid(-1, NULL, 0) > 0) {
        }
    }
    return ctest_finish("shim_nofile");
}
