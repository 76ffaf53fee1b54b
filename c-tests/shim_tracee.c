/* shim_tracee.c: the program strace, gdb and ltrace trace in the tracer tests.
 * It starts and joins a thread, forks a child that exits 4 and waits for it,
 * writes `argv[1]` lines 1 ms apart (each line is a few ptrace stops, one
 * of which comes after the tracer is back in its wait), and exits 3 through
 * marker(), a function gdb puts a breakpoint on. */
#include "ctest.h"
#include <pthread.h>

static void *worker(void *arg) { return arg; }

/* Not inlined: gdb breaks here. */
__attribute__((noinline)) int marker(int n) { return n + 1; }

int main(int argc, char **argv) {
    int lines = argc > 1 ? atoi(argv[1]) : 10;
    pthread_t thread;
    if (pthread_create(&thread, NULL, worker, NULL) != 0 || pthread_join(thread, NULL) != 0) return 1;
    pid_t child = fork();
    if (child == 0) _exit(4);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child) return 1;
    for (int i = 0; i < lines; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "line %d\n", i);
        if (write(1, buf, len) != len) return 1;
        ctest_sleep_ms(1);
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "child %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (write(1, buf, len) != len) return 1;
    return marker(2);
}
