/* nsinit.c - PID 1 of a new pid namespace that forks children and never
   reaps them. Prints "skip ERROR" if unshare(CLONE_NEWPID) fails, else
   "ready PID" with the namespace init's pid as seen from outside. */
#include "common.h"
#include <sched.h>

int main(void)
{
    int fds[2];
    pid_t init;
    char c;

    if (unshare(CLONE_NEWPID) < 0) {
        printf("skip unshare(CLONE_NEWPID): %s\n", strerror(errno));
        return 0;
    }
    if (pipe(fds) < 0)
        die("pipe");
    init = fork();
    if (init < 0)
        die("fork");
    if (init == 0) { /* PID 1 of the new namespace */
        close(fds[0]);
        plant_zombies(NCHILDREN);
        if (write(fds[1], "x", 1) != 1)
            _exit(1);
        sleep_forever();
    }
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1) {
        fprintf(stderr, "nsinit: the namespace init failed\n");
        return 1;
    }
    ready(init);
    sleep_forever();
}
