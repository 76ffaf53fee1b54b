/* shim_spurious.c: the classic wait()-once SIGCHLD handler (installed by
 * signal()) must run once per exited child, and only then: its wait() blocks
 * if it runs while no child has exited and another child is still running.
 *
 * Child A exits at once; child B exits once the handler for A has begun (it
 * writes B a byte), while that handler is still busy (it takes 150 ms: the
 * program logs, say), so B's SIGCHLD stays pending until it returns. Child C runs for 3 s. Natively
 * the handler runs twice (A, B) and returns at once each time. A shim that
 * calls the handler for B in the same signal and then again for B's pending
 * signal makes wait() block until C exits (3 s).
 * Prints "handler calls N, longest call M ms". */
#include "ctest.h"
#include <time.h>

static volatile sig_atomic_t calls;
static int release_b = -1;
static volatile long longest_ms;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reaps every child left, retrying after EINTR, so that a failed run leaves
 * nothing behind either. */
static void reap_all(void) {
    for (;;) {
        if (waitpid(-1, NULL, 0) > 0 || errno == EINTR) continue;
        break;
    }
}

static void sig_chld(int signo) {
    int saved = errno, stat;
    long start = now_ms();
    (void)signo;
    if (calls++ == 0) (void)!write(release_b, "", 1);
    wait(&stat);
    struct timespec busy = {0, 150 * 1000000L};
    nanosleep(&busy, NULL);
    long took = now_ms() - start;
    if (took > longest_ms) longest_ms = took;
    errno = saved;
}

int main(void) {
    ctest_start();
    signal(SIGCHLD, sig_chld);
    pid_t c = fork();
    if (c == 0) {
        ctest_sleep_ms(3000);
        _exit(0);
    }
    int gate[2];
    CHECK(pipe(gate) == 0);
    pid_t b = fork();
    if (b == 0) {
        char byte;
        close(gate[1]);
        while (read(gate[0], &byte, 1) == -1 && errno == EINTR) {
        }
        _exit(0);
    }
    close(gate[0]);
    release_b = gate[1];
    pid_t a = fork();
    if (a == 0) _exit(0);
    WAIT_UNTIL(calls >= 2, 2000);
    ctest_sleep_ms(600);
    int early_calls = calls;
    long early_longest = longest_ms;
    printf("handler calls %d, longest call %ld ms\n", early_calls, early_longest);
    CHECK(early_calls == 2);
    CHECK(early_longest < 1000);
    /* cleanup */
    signal(SIGCHLD, SIG_DFL);
    close(release_b); /* B ends here if no handler ran */
    kill(c, SIGKILL); /* C has served its purpose: do not wait out its 3 s */
    reap_all();
    return ctest_finish("shim_spurious");
}
