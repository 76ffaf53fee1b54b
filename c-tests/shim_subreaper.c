/* shim_subreaper.c: runs `sh -c 'exec 3<&0; cat <&3 >/dev/null 2>&1 & echo $!;
 * exit 0'` with fork/exec, its stdin a pipe of ours, reads the orphan's pid,
 * waits for sh, checks the orphan's parent, then closes the pipe (the cat
 * ends) and sleeps up to 10 s until it has no child left. Prints "orphan PID", "adopted yes|no"
 * (was the orphaned cat this program's child after sh exited?) and
 * "children left N, zombies left Z".
 *
 * Usage: shim_subreaper expect-adopt   (ZREAP_SUBREAPER=1: the orphan is
 *                                       adopted, the shim reaps it, and the
 *                                       program's wait gets its exit)
 *        shim_subreaper no-adopt       (no subreaper: the orphan goes elsewhere) */
#include "ctest.h"

int main(int argc, char **argv) {
    ctest_start();
    int expect = argc > 1 && strcmp(argv[1], "expect-adopt") == 0;
    int out[2], gate[2];
    CHECK(pipe(out) == 0);
    CHECK(pipe(gate) == 0);
    pid_t sh = fork();
    if (sh == 0) {
        dup2(out[1], 1);
        dup2(gate[0], 0);
        close(out[0]);
        close(out[1]);
        close(gate[0]);
        close(gate[1]);
        /* The orphan lives until we close gate[1]: after the check below. */
        execl("/bin/sh", "sh", "-c", "exec 3<&0; cat <&3 >/dev/null 2>&1 & echo $!; exit 0", (char *)NULL);
        _exit(127);
    }
    CHECK(sh > 0);
    close(out[1]);
    close(gate[0]);
    char buf[64] = "";
    ssize_t n = 0, r;
    while ((r = read(out[0], buf + n, sizeof buf - 1 - (size_t)n)) > 0) n += r;
    buf[n] = '\0';
    close(out[0]);
    pid_t orphan = (pid_t)atoi(buf);
    printf("orphan %d\n", (int)orphan);
    CHECK(orphan > 0);

    int st;
    CHECK(waitpid(sh, &st, 0) == sh);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* sh is gone: where did its background cat go? */
    char state;
    pid_t ppid = 0;
    int adopted = ctest_proc_stat(orphan, &state, &ppid) == 0 && ppid == getpid();
    printf("adopted %s\n", adopted ? "yes" : "no");
    CHECK(adopted == expect);
    close(gate[1]); /* the orphan (cat) reads EOF and exits */

    WAIT_UNTIL(ctest_children() == 0, 10000);
    int children = ctest_children(), zombies = ctest_zombies();
    printf("children left %d, zombies left %d\n", children, zombies);
    CHECK(children == 0);
    CHECK(zombies == 0);
    if (expect) {
        /* The shim reaped the orphan and kept its exit for the program. */
        pid_t got = waitpid(-1, &st, WNOHANG);
        printf("waitpid(-1) after: %s\n", got == orphan ? "the orphan" : "something else");
        CHECK(got == orphan);
        CHECK(got == orphan && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_ERR(waitpid(-1, &st, WNOHANG), ECHILD);
    }
    return ctest_finish("shim_subreaper");
}
