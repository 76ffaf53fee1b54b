/*
 * poll_loop.c - children in a plain poll() loop, without any signal handler.
 *
 * zreap_install(ZREAP_NO_HANDLER) installs no SIGCHLD handler: zreap_fd() is
 * readable while a child's exit waits, and zreap_all() collects the exits in
 * ordinary context. The children here come from plain fork().
 *
 * Usage: poll_loop [N]     (N children, exiting with 0..N-1; default 5)
 * Prints one line per exit and "all N children reaped"; exits 1 on a
 * missing or wrong status.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zreap.h>

struct tally {
    int reaped;
    int status_sum;
};

static void on_exit_cb(pid_t pid, int wstatus, void *ctx)
{
    struct tally *t = ctx;

    if (WIFEXITED(wstatus)) {
        printf("child %d exited %d\n", (int)pid, WEXITSTATUS(wstatus));
        t->status_sum += WEXITSTATUS(wstatus);
    }
    t->reaped++;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5;
    struct tally t = {0, 0};
    int expected_sum = 0;

    if (zreap_install(ZREAP_NO_HANDLER) == -1) {
        perror("zreap_install");
        return 1;
    }
    struct pollfd pfd = {.fd = zreap_fd(), .events = POLLIN};
    if (pfd.fd == -1) {
        perror("zreap_fd");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == -1) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            usleep(1000 * (unsigned)(i % 3));
            _exit(i);
        }
        expected_sum += i;
    }
    while (t.reaped < n) {
        /* A real program polls its sockets here too. */
        int ready = poll(&pfd, 1, 10000);
        if (ready == -1) {
            perror("poll");
            return 1;
        }
        if (ready == 0) {
            fprintf(stderr, "no exit within 10 s\n");
            return 1;
        }
        if (zreap_all(on_exit_cb, &t) == -1) {
            perror("zreap_all");
            return 1;
        }
    }
    printf("all %d children reaped\n", n);
    return t.status_sum == expected_sum ? 0 : 1;
}
