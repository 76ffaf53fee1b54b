/* A tracked child that this process traces (PTRACE_TRACEME, as under a
 * debugger or an strace-like tool): the kernel reports a tracee's ptrace
 * stops to its tracer's waits even when they ask for exits only. A blocking
 * zwait(pid) from another thread must deliver the child's exit (7), never a
 * stop taken for a death by signal, and leave no zombie; the tracer must get
 * every stop but the first one that wait may take. Run without an install,
 * then under ZREAP_OWN (the scope the README gives tracers). */
#include "ctest.h"
#include <pthread.h>
#include <sys/ptrace.h>

enum { STOPS = 3 };

static pid_t child;
static volatile int waited;
static pid_t wait_result;
static int wait_status = -1;

static void *waiter(void *arg) {
    (void)arg;
    wait_result = zwait(child, &wait_status, 0);
    __atomic_store_n(&waited, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void traced_child_exits_once(const char *scope) {
    child = zfork(NULL);
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        for (int i = 0; i < STOPS; i++) raise(SIGSTOP);
        _exit(7);
    }
    CHECK(child > 0);
    waited = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, waiter, NULL) == 0);
    /* The tracer: takes each reported stop and continues the child; a stop
     * nobody reported for 300 ms counts as lost and is continued too. */
    int reported = 0, lost = 0, unreported_ms = 0;
    for (int ms = 0; ms < 20000 && !__atomic_load_n(&waited, __ATOMIC_SEQ_CST); ms++) {
        siginfo_t info = {0};
        if (waitid(P_PID, (id_t)child, &info, WSTOPPED | WNOHANG | __WALL) == 0 && info.si_pid == child) {
            reported++;
            unreported_ms = 0;
            ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        char state = 0;
        pid_t ppid;
        if (ctest_proc_stat(child, &state, &ppid) == 0 && state == 't' && ++unreported_ms >= 300) {
            lost++;
            unreported_ms = 0;
            ptrace(PTRACE_CONT, child, 0, 0);
        }
        ctest_sleep_ms(1);
    }
    if (!waited) {
        fprintf(stderr, "%s: zwait(%d) still blocked after 20 s\n", scope, (int)child);
        kill(child, SIGKILL);
    }
    CHECK(pthread_join(t, NULL) == 0);
    if (wait_result != child || !WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 7)
        fprintf(stderr, "%s: zwait(%d) returned %d, status %#x; want the exit with 7\n", scope, (int)child,
                (int)wait_result, wait_status);
    CHECK(wait_result == child && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 7);
    if (reported + lost != STOPS || lost > 1)
        fprintf(stderr, "%s: the tracer got %d of %d stops, %d lost\n", scope, reported, STOPS, lost);
    CHECK(reported + lost == STOPS && lost <= 1);
    ctest_sleep_ms(50);
    char state = 0;
    pid_t ppid;
    if (ctest_proc_stat(child, &state, &ppid) == 0) {
        fprintf(stderr, "%s: child %d left in state %c\n", scope, (int)child, state);
        kill(child, SIGKILL);
        waitpid(child, NULL, __WALL);
        CHECK(0);
    }
}

int main(void) {
    ctest_start();
    traced_child_exits_once("no install");
    CHECK(zreap_install(ZREAP_OWN) == 0);
    traced_child_exits_once("ZREAP_OWN");
    return ctest_finish("reaper_traced_child");
}
