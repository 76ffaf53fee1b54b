/* The daemon writes its pidfile through "<pidfile>.<pid>.tmp". Whoever may
 * write the pidfile's directory can plant that name as a symlink: the daemon
 * must not follow it (as root it would truncate and write any file). In a pid
 * namespace the daemon's pid is known in advance: symlinks to a victim file
 * are planted for the pids zdaemonize() will use. The daemon starts, its
 * pidfile is a regular file that holds its pid, and the victim is unchanged.
 * This process is a subreaper and reaps the daemon. */
#include "ctest_pid.h"
#include "ctest_tree.h"

#include <limits.h>
#include <sys/stat.h>

#define FIRST_PID 500
#define PLANTED 20

static char stopfile[PATH_MAX + 64];

int main(void) {
    ctest_leave_ns_init();
    ctest_start();
    CHECK(ctest_pid_control_open() >= 0);
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    char dir[] = "/tmp/zreap-daemon-symlink-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char victim[PATH_MAX + 64], pidfile[PATH_MAX + 64], link[PATH_MAX + 96];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(pidfile, sizeof pidfile, "%s/d.pid", dir);
    snprintf(stopfile, sizeof stopfile, "%s/stop", dir);
    int v = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CHECK(v >= 0 && write(v, "precious\n", 9) == 9);
    close(v);
    for (int p = FIRST_PID; p < FIRST_PID + PLANTED; p++) {
        snprintf(link, sizeof link, "%s.%d.tmp", pidfile, p);
        CHECK(symlink(victim, link) == 0);
    }

    CHECK(ctest_next_pid_is(FIRST_PID) == 0);
    zdaemon_options opts;
    zdaemon_options_init(&opts);
    opts.flags = ZDAEMON_RETURN;
    opts.pidfile = pidfile;
    pid_t d = zdaemonize(&opts);
    if (d == 0) {
        alarm(30);
        while (access(stopfile, F_OK) != 0) ctest_sleep_ms(5);
        exit(0);
    }
    CHECK(d > FIRST_PID && d < FIRST_PID + PLANTED);

    char buf[64] = {0};
    CHECK(read_file(victim, buf, sizeof buf - 1) > 0);
    CHECK(strcmp(buf, "precious\n") == 0);
    if (strcmp(buf, "precious\n") != 0) fprintf(stderr, "  the victim now holds: %s", buf);
    struct stat sb;
    CHECK(lstat(pidfile, &sb) == 0 && S_ISREG(sb.st_mode));
    char want[32];
    snprintf(want, sizeof want, "%d\n", (int)d);
    memset(buf, 0, sizeof buf);
    CHECK(read_file(pidfile, buf, sizeof buf - 1) > 0 && strcmp(buf, want) == 0);

    int fd = open(stopfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    close(fd);
    if (d > 0) {
        int st = -1;
        CHECK(reap_within(d, &st, 20000) == d);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK(kill_children() == 0);
    for (int p = FIRST_PID; p < FIRST_PID + PLANTED; p++) {
        snprintf(link, sizeof link, "%s.%d.tmp", pidfile, p);
        unlink(link);
    }
    unlink(pidfile);
    unlink(stopfile);
    unlink(victim);
    CHECK(rmdir(dir) == 0);
    return ctest_finish("daemon_pidfile_symlink");
}
