/* shim_siginfo.c: an SA_SIGINFO SIGCHLD handler that records si_pid,
 * si_status and si_code of each call (into preallocated arrays: async-signal-
 * safe) and reaps that one pid with waitpid(si_pid, WNOHANG), while N
 * children exit at once (they all read EOF from one pipe when it closes).
 *
 * Usage: shim_siginfo strict   (under the shim: every child's pid is recorded
 *                               exactly once, with its status; no zombies)
 *        shim_siginfo report   (without the shim: prints how many were missed)
 * Prints "recorded R of N, missed M, duplicates D". */
#include "ctest.h"

#define N 50
#define SLOTS 4096

static volatile sig_atomic_t calls;
static pid_t rec_pid[SLOTS];
static int rec_status[SLOTS];
static int rec_code[SLOTS];

/* Reaps every child left, retrying after EINTR, so that a failed run leaves
 * nothing behind either. */
static void reap_all(void) {
    for (;;) {
        if (waitpid(-1, NULL, 0) > 0 || errno == EINTR) continue;
        break;
    }
}

static void on_chld(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)ctx;
    int saved = errno;
    int i = calls;
    if (i < SLOTS) {
        rec_pid[i] = info->si_pid;
        rec_status[i] = info->si_status;
        rec_code[i] = info->si_code;
        calls = i + 1;
    }
    int st;
    waitpid(info->si_pid, &st, WNOHANG);
    errno = saved;
}

int main(int argc, char **argv) {
    ctest_start();
    int strict = argc > 1 && strcmp(argv[1], "strict") == 0;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);

    /* The program's own handler is what sigaction reports. */
    struct sigaction old;
    memset(&old, 0, sizeof old);
    CHECK(sigaction(SIGCHLD, NULL, &old) == 0);
    CHECK(old.sa_sigaction == on_chld);
    CHECK((old.sa_flags & SA_SIGINFO) != 0);

    int gate[2];
    CHECK(pipe(gate) == 0);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(gate[1]);
            char c;
            while (read(gate[0], &c, 1) == -1 && errno == EINTR) {
            }
            _exit(i + 1); /* exit codes 1..N tell the children apart */
        }
        CHECK(pids[i] > 0);
    }
    close(gate[0]);
    /* Every child is blocked in read(); closing the write end releases all at once. */
    close(gate[1]);

    /* All children exit within a few ms: wait until every one has either been
     * recorded or stays a zombie nobody reaps. */
    if (strict) WAIT_UNTIL(calls >= N, 5000); /* without the shim some are merged: never N */
    WAIT_UNTIL(ctest_count_children(getpid(), 0) == ctest_zombies(), 5000);
    ctest_sleep_ms(200);

    int recorded = 0, dups = 0, missed = 0;
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (int j = 0; j < calls && j < SLOTS; j++) {
            if (rec_pid[j] != pids[i]) continue;
            seen++;
            if (strict) {
                CHECK(rec_code[j] == CLD_EXITED);
                CHECK(rec_status[j] == i + 1);
            }
        }
        if (seen == 0) missed++;
        if (seen > 0) recorded++;
        if (seen > 1) dups += seen - 1;
        if (strict && seen != 1)
            fprintf(stderr, "child %d (pid %d) recorded %d times\n", i, (int)pids[i], seen);
    }
    printf("recorded %d of %d, missed %d, duplicates %d, handler calls %d\n", recorded, N, missed,
           dups, (int)calls);
    if (strict) {
        CHECK(recorded == N);
        CHECK(missed == 0);
        CHECK(dups == 0);
        CHECK(calls == N);
        CHECK(ctest_zombies() == 0);
    }

    /* Cleanup: reap whatever is left (zombies without the shim). */
    signal(SIGCHLD, SIG_DFL);
    reap_all();
    CHECK(ctest_children() == 0);
    return ctest_finish("shim_siginfo");
}
