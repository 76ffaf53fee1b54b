/* traced.c - the parent is traced: a child of it attaches with ptrace, which
   leaves the parent in a tracing stop (state t) that nothing resumes. */
#include "common.h"
#include <sys/ptrace.h>

int main(void)
{
    pid_t me = getpid();
    pid_t tracer;

    plant_zombies(NCHILDREN);
    ready(me);
    tracer = fork();
    if (tracer < 0)
        die("fork");
    if (tracer == 0) {
        int status;
        if (ptrace(PTRACE_ATTACH, me, NULL, NULL) < 0) {
            perror("ptrace(PTRACE_ATTACH)");
            _exit(1);
        }
        waitpid(me, &status, __WALL); /* the attach stop; never continued */
        sleep_forever();
    }
    sleep_forever();
}
