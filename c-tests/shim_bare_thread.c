/* Run under the preload shim with ZREAP_REAP=all (preload/tests/preload.rs):
 * the reaper thread the shim starts at the first child.
 *
 *   shim_bare_thread unprivileged : run as a user that cannot change its
 *       credentials. The thread is one glibc never made (a bare clone), so
 *       glibc still counts one thread, and fork stays on its single-threaded
 *       path; the thread never writes the main thread's errno (it has no
 *       TLS of its own); pthread_exit in main ends the process.
 *   shim_bare_thread privileged   : run as root. The thread is a pthread,
 *       which glibc's setuid and friends keep in step.
 *
 * In both: children never waited for are reaped, and a later waitpid still
 * gets each one's own status. Prints one line per check; exits 0 only if
 * every check held (the unprivileged run exits through pthread_exit).
 */
#include "ctest.h"
#include <pthread.h>
#include <sys/single_threaded.h>

/* Are the children `pids` reaped (gone from /proc as our children) within
 * `ms` milliseconds? A child still running is not: it may yet stay a
 * zombie. Looks every 50 ms (each look reads /proc, slow on a busy machine). */
static int reaped_within(const pid_t *pids, int n, long ms) {
    for (long waited = 0;; waited += 50) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            char state;
            pid_t ppid;
            left += ctest_proc_stat(pids[i], &state, &ppid) == 0 && ppid == getpid();
        }
        if (left == 0) {
            return 1;
        }
        if (waited >= ms) {
            return 0;
        }
        ctest_sleep_ms(50);
    }
}

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "unprivileged") != 0 && strcmp(argv[1], "privileged") != 0)) {
        fprintf(stderr, "usage: shim_bare_thread unprivileged|privileged\n");
        return 2;
    }
    int bare = strcmp(argv[1], "unprivileged") == 0;

    enum { CHILDREN = 5 };
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = ctest_child_exiting(10 + i);
    }
    ctest_say(reaped_within(pids, CHILDREN, 5000), "children never waited for are reaped by the shim's thread");
    ctest_say(ctest_tasks() == 2, "the shim runs one thread of its own");
    if (bare) {
        ctest_say(__libc_single_threaded == 1, "glibc still counts one thread");
    } else {
        ctest_say(__libc_single_threaded == 0, "glibc counts the shim's pthread");
    }
    for (int i = 0; i < CHILDREN; i++) {
        int status = 0;
        pid_t got = waitpid(pids[i], &status, 0);
        ctest_say(got == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 10 + i,
                  "a later waitpid gets the child's own status");
    }
    if (ctest_failures != 0) {
        return 1;
    }

    /* While children are being made the thread wakes every 20 ms, and its
     * futex waits time out (ETIMEDOUT): none of that may show in errno, which
     * this checks for 10 ms after each of 200 children. */
    long changed = 0;
    static pid_t loop_pids[200];
    for (int round = 0; round < 200; round++) {
        loop_pids[round] = ctest_child_exiting(0);
        changed += !ctest_errno_steady_ms(10);
    }
    ctest_say(changed == 0, "the main thread's errno is never changed by the shim's thread");
    ctest_say(reaped_within(loop_pids, 200, 5000), "the children of the errno loop are reaped too");

    if (ctest_failures != 0 || !bare) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        return ctest_failures != 0;
    }
    /* The last thread glibc knows ends: the process must end with it. */
    printf("main calls pthread_exit\n");
    fflush(stdout);
    pthread_exit(NULL);
}
