/* zreap_install(0), then zdaemonize(): the daemon carries the library's state
 * over, in which the handler is installed, so zreap's SIGCHLD handler must stay while every other handler goes back to
 * SIG_DFL. A child the daemon forks and that exits is reaped: it leaves no
 * zombie. The daemon writes what it found to a file and exits; this process
 * (a subreaper, whose own handler reaps the daemon) waits for both. */
#include "ctest_tree.h"

static void on_usr2(int sig) { (void)sig; }

/* In the daemon: "<SIGUSR2 reset> <child reaped>" to `facts`. */
static void daemon_body(const char *facts) {
    alarm(30);
    struct sigaction usr2;
    int usr2_reset = sigaction(SIGUSR2, NULL, &usr2) == 0 && usr2.sa_handler == SIG_DFL;
    pid_t c = fork();
    if (c == 0) _exit(7);
    int reaped = 0;
    for (int i = 0; c > 0 && i < 2000 && !reaped; i++) {
        reaped = kill(c, 0) == -1 && errno == ESRCH;
        if (!reaped) ctest_sleep_ms(5);
    }
    char line[64];
    int n = snprintf(line, sizeof line, "%d %d\n", usr2_reset, reaped);
    int out = open(facts, O_WRONLY | O_TRUNC | O_CLOEXEC);
    _exit(out >= 0 && write(out, line, (size_t)n) == n ? 0 : 3);
}

int main(void) {
    ctest_start();
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    char facts[] = "/tmp/zreap-daemon-install-XXXXXX";
    int ffd = mkstemp(facts);
    CHECK(ffd >= 0);
    close(ffd);
    CHECK(signal(SIGUSR2, on_usr2) != SIG_ERR);
    CHECK(zreap_install(0) == 0);
    zdaemon_options opts;
    zdaemon_options_init(&opts);
    opts.flags = ZDAEMON_RETURN;
    pid_t d = zdaemonize(&opts);
    if (d == 0) daemon_body(facts);
    CHECK(d > 0);
    /* Our handler reaps the daemon when it exits: wait until it is gone. */
    WAIT_UNTIL(d > 0 && kill(d, 0) == -1 && errno == ESRCH, 20000);
    char buf[64] = {0};
    CHECK(read_file(facts, buf, sizeof buf - 1) > 0);
    CHECK(strcmp(buf, "1 1\n") == 0);
    if (strcmp(buf, "1 1\n") != 0)
        fprintf(stderr, "  in the daemon: SIGUSR2 reset, exited child reaped: %s", buf);
    unlink(facts);
    CHECK(ctest_children() == 0);
    return ctest_finish("daemon_after_install");
}
