/* shim_ptrace.c: a tracer keeps its ptrace stops. The kernel reports a traced
 * child's stops to waitid/wait4 even without WUNTRACED; a shim that reaped
 * "whatever waitid returns" would swallow them and the tracer would hang.
 * The child stops itself (PTRACE_TRACEME + SIGSTOP) three times; the tracer
 * sees each stop, continues it, then sees its exit status. Runs with a
 * SIGCHLD handler installed (argv[1] = "handler") or at the default. Each
 * stop is left pending for 100 ms before the tracer waits for it.
 * With argv[2] = "any", the tracer waits as strace does, with a blocking
 * waitpid(-1), for 500 stops 1 ms apart: a shim that made such a wait poll
 * (100 ms per stop) would run into the alarm. */
#include "ctest.h"
#include <sys/ptrace.h>

static volatile sig_atomic_t signals;
static void on_chld(int sig) {
    (void)sig;
    signals++;
}

int main(int argc, char **argv) {
    ctest_start();
    alarm(20);
    if (argc > 1 && strcmp(argv[1], "handler") == 0) signal(SIGCHLD, on_chld);
    int any = argc > 2 && strcmp(argv[2], "any") == 0;
    int want_stops = any ? 500 : 3;
    pid_t child = fork();
    if (child == 0) {
        /* A tracer killed by its alarm takes its tracee along. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        for (int i = 0; i < want_stops; i++) {
            /* "any": the tracer is back in its wait before the next stop. */
            if (any) ctest_sleep_ms(1);
            raise(SIGSTOP);
        }
        _exit(6);
    }
    CHECK(child > 0);
    int stops = 0, st = 0;
    for (;;) {
        /* Leave each stop waiting a while: a shim that takes "whatever waitid
         * returns" gets its chance to swallow it. */
        if (!any) ctest_sleep_ms(100);
        pid_t got = waitpid(any ? -1 : child, &st, 0);
        if (got == -1 && errno == EINTR) continue;
        CHECK(got == child);
        if (got != child) break;
        if (WIFSTOPPED(st)) {
            stops++;
            CHECK(ptrace(PTRACE_CONT, child, NULL, NULL) == 0);
            continue;
        }
        break;
    }
    printf("stops %d, exit %d\n", stops, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    CHECK(stops == want_stops);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 6);
    return ctest_finish("shim_ptrace");
}
