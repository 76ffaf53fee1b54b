/* shim_eintr.c: with SIGCHLD at its default, a child's exit never interrupts
 * a blocking system call (the program installed no handler, so it cannot
 * expect EINTR). A child exits after 50 ms while the program blocks in
 * read() on a pipe that a second child writes to after 300 ms; the read
 * must return the byte, not fail with EINTR. Then it reaps both. */
#include "ctest.h"

/* Reaps every child left, retrying after EINTR, so that a failed run leaves
 * nothing behind either. */
static void reap_all(void) {
    for (;;) {
        if (waitpid(-1, NULL, 0) > 0 || errno == EINTR) continue;
        break;
    }
}

int main(void) {
    ctest_start();
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t quick = fork();
    if (quick == 0) {
        ctest_sleep_ms(50);
        _exit(0);
    }
    pid_t writer = fork();
    if (writer == 0) {
        ctest_sleep_ms(300);
        if (write(p[1], "x", 1) != 1) _exit(1);
        _exit(0);
    }
    close(p[1]);
    char c = 0;
    errno = 0;
    ssize_t n = read(p[0], &c, 1);
    if (n != 1) fprintf(stderr, "read returned %zd, errno %d (%s)\n", n, errno, strerror(errno));
    CHECK(n == 1 && c == 'x');
    /* nanosleep is not restarted by SA_RESTART, so check a restartable one: a
     * second read, with a child exiting meanwhile. */
    int q[2];
    CHECK(pipe(q) == 0);
    pid_t quick2 = fork();
    if (quick2 == 0) _exit(0);
    pid_t writer2 = fork();
    if (writer2 == 0) {
        ctest_sleep_ms(200);
        if (write(q[1], "y", 1) != 1) _exit(1);
        _exit(0);
    }
    close(q[1]);
    errno = 0;
    n = read(q[0], &c, 1);
    if (n != 1) fprintf(stderr, "second read returned %zd, errno %d (%s)\n", n, errno, strerror(errno));
    CHECK(n == 1 && c == 'y');
    int st;
    pid_t all[4] = {quick, writer, quick2, writer2};
    for (int i = 0; i < 4; i++) {
        CHECK(waitpid(all[i], &st, 0) == all[i]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    reap_all(); /* after a failed check above */
    return ctest_finish("shim_eintr");
}
