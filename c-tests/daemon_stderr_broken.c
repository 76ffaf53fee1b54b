/* Without ZDAEMON_RETURN a failed setup ends the caller's process with exit
 * status 1 after one line on stderr, also when that line cannot be written:
 * SIGPIPE ignored and stderr a pipe whose reader is gone (EPIPE). The caller's
 * process is a subprocess; its failed daemon comes to us (a subreaper) and is
 * reaped here. */
#include "ctest_tree.h"

int main(void) {
    ctest_start();
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    pid_t caller = fork();
    if (caller == 0) {
        int p[2];
        if (pipe(p) != 0 || dup2(p[1], 2) != 2) _exit(90);
        close(p[0]);
        close(p[1]);
        signal(SIGPIPE, SIG_IGN);
        zdaemon_options opts;
        zdaemon_options_init(&opts);
        opts.workdir = "/nonexistent-zreap-daemon-stderr";
        pid_t d = zdaemonize(&opts);
        _exit(d == 0 ? 0 : 77); /* not reached: the caller's process exits */
    }
    int st = -1;
    CHECK(caller > 0 && reap_within(caller, &st, 20000) == caller);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 1) {
        char how[64];
        describe_status(how, sizeof how, st);
        fprintf(stderr, "  the caller's process %s, not exit 1\n", how);
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    /* Its failed daemon came to us. */
    for (long waited = 0; ctest_children() > 0 && waited < 10000; waited += 5) {
        if (waitpid(-1, NULL, WNOHANG) <= 0) ctest_sleep_ms(5);
    }
    CHECK(ctest_children() == 0);
    return ctest_finish("daemon_stderr_broken");
}
