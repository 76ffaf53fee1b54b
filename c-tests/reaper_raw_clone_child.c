/* A process made by a raw clone() (glibc's clone(), no CLONE_VM: no fork handlers
 * run) inherits zreap's SIGCHLD handler and a copy of its state, but not the
 * slots of tracked children, which forks leave out (MADV_DONTFORK). Under
 * zreap_install(0) the parent has an undelivered exit of tracked child T; the
 * clone child forks a child that gets pid T again (ns_last_pid) and exits 7. The
 * handler must not touch the table there: the clone child must live (no SIGSEGV)
 * and its own waitpid(T) must get 7. The parent still gets T's exit once. */
#include "ctest.h"
#include "ctest_pid.h"

#include <sched.h>
#include <sys/mman.h>

#define STACK_SIZE (256 * 1024)

static pid_t tracked;

static int clone_child(void *arg) {
    (void)arg;
    if (ctest_next_pid_is(tracked) != 0)
        return 10;
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    if (pid != tracked)
        return 11;
    /* Let SIGCHLD reach zreap's inherited handler, and the pass it runs. */
    for (int i = 0; i < 20; i++)
        ctest_sleep_ms(10);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return 12;
    return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 13;
}

int main(void) {
    ctest_start();
    CHECK(ctest_pid_control_open() >= 0);
    ctest_leave_ns_init();
    CHECK(zreap_install(0) == 0);

    char *argv[] = {"true", NULL};
    tracked = zspawn("/bin/true", argv, NULL, NULL);
    CHECK(tracked > 0);
    /* The library reaps it and keeps its exit for zwait: the slot stays. */
    for (int i = 0; i < 500 && kill(tracked, 0) == 0; i++)
        ctest_sleep_ms(10);
    CHECK(kill(tracked, 0) == -1 && errno == ESRCH);

    char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(stack != MAP_FAILED);
    pid_t child = clone(clone_child, stack + STACK_SIZE, SIGCHLD, NULL);
    CHECK(child > 0);
    int status = 0;
    CHECK(zwait(child, &status, 0) == child);
    if (WIFSIGNALED(status))
        fprintf(stderr, "clone child killed by signal %d\n", WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        fprintf(stderr, "clone child exited %d\n", WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    CHECK(zwait(tracked, &status, 0) == tracked);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_raw_clone_child");
}
