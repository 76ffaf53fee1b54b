/* A caller with fd 0 closed, then one with fds 0, 1 and 2 all closed (as
 * under some supervisors). zdaemonize() opens /dev/null (close-on-exec) and
 * its report socket, which land on the free low fds. The daemon's fds 0-2
 * must all be /dev/null and inheritable (not close-on-exec), or a daemon that
 * execs loses its stdin; and its report must reach the caller, or
 * ZDAEMON_RETURN fails while the daemon runs. The daemon writes what it found
 * to a file and _exit()s; this process, a subreaper, collects it. */
#include "ctest_tree.h"

static void daemonize_with_closed(const char *facts, int closed) {
    pid_t launcher = fork();
    if (launcher == 0) {
        for (int fd = 0; fd < closed; fd++) close(fd);
        zdaemon_options opts;
        zdaemon_options_init(&opts);
        opts.flags = ZDAEMON_RETURN;
        pid_t daemon = zdaemonize(&opts);
        if (daemon != 0) _exit(daemon > 0 ? 0 : 1);
        int out = open(facts, O_WRONLY | O_TRUNC | O_CLOEXEC);
        char line[64];
        int n = snprintf(line, sizeof line, "%d %d %d\n", fcntl(0, F_GETFD), fcntl(1, F_GETFD), fcntl(2, F_GETFD));
        if (out >= 0 && write(out, line, (size_t)n) == n) _exit(0);
        _exit(3);
    }
    int st;
    CHECK(reap_within(launcher, &st, 10000) == launcher);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "with fds 0..%d closed: zdaemonize(ZDAEMON_RETURN) failed in the caller\n", closed - 1);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The daemon is adopted by us: wait for it. */
    pid_t daemon = -1;
    for (int i = 0; i < 2000 && daemon <= 0; i++) {
        daemon = waitpid(-1, &st, WNOHANG);
        if (daemon == 0) ctest_sleep_ms(5);
    }
    CHECK(daemon > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char buf[64] = {0};
    CHECK(read_file(facts, buf, sizeof buf - 1) > 0);
    CHECK(strcmp(buf, "0 0 0\n") == 0);
    if (strcmp(buf, "0 0 0\n") != 0) fprintf(stderr, "F_GETFD of 0 1 2 in the daemon: %s", buf);
}

int main(void) {
    ctest_start();
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    char facts[] = "/tmp/zreap-daemon-stdio-XXXXXX";
    int ffd = mkstemp(facts);
    CHECK(ffd >= 0);
    close(ffd);
    daemonize_with_closed(facts, 1);
    daemonize_with_closed(facts, 3);
    unlink(facts);
    CHECK(ctest_children() == 0);
    return ctest_finish("daemon_stdio_closed");
}
