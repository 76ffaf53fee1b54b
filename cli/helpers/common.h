/*
 * common.h - shared by the helpers that plant one zombie cause each for
 * cli/tests/ps.rs. Each helper prints "ready PID" (PID: the parent whose
 * zombies the test inspects) once the cause is in place, then waits to be
 * killed. Children are made to exit and checked with waitid(WNOWAIT), which
 * sees an exited child without reaping it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCHILDREN 3

static inline void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Forks n children that exit at once; waits (without reaping) until each has exited. */
static inline void plant_zombies(int n)
{
    pid_t pids[16];
    int i;

    for (i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            die("fork");
        if (pids[i] == 0)
            _exit(0);
    }
    for (i = 0; i < n; i++) {
        siginfo_t info;
        while (waitid(P_PID, (id_t)pids[i], &info, WEXITED | WNOWAIT) < 0) {
            if (errno != EINTR)
                die("waitid");
        }
    }
}

static inline void ready(pid_t pid)
{
    printf("ready %d\n", (int)pid);
    fflush(stdout);
}

static inline void sleep_forever(void)
{
    for (;;)
        sleep(1000);
}
