/* The first call into the library sets it up (it remaps the page of its lock)
 * while other threads of the process that call it wait. A fork made meanwhile by
 * a thread that does not call the library must not leave its child waiting for a
 * setup no thread of the child will finish: each of 200 processes forks children
 * in a loop on one thread while its main thread makes its first call
 * (zreap_install(0)), and each child calls zwait(-1, WNOHANG) at once. A child
 * still there after 5 s is killed by its alarm, and counted. */
#include "ctest.h"

#include <pthread.h>
#include <stdatomic.h>

#define ROUNDS 200

static atomic_int stop;

static void *fork_in_a_loop(void *arg) {
    int *hung = arg;
    while (!atomic_load(&stop)) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(5);
            int status;
            zwait(-1, &status, WNOHANG);
            _exit(0);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
            continue;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
            (*hung)++;
    }
    return NULL;
}

int main(void) {
    ctest_start();
    int failed_rounds = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            int hung = 0;
            pthread_t thread;
            if (pthread_create(&thread, NULL, fork_in_a_loop, &hung) != 0)
                _exit(2);
            /* Let the loop get going; vary where the first call falls. */
            struct timespec pause = {0, 200000L + (round % 7) * 50000L};
            nanosleep(&pause, NULL);
            int rc = zreap_install(0);
            struct timespec more = {0, 2000000L};
            nanosleep(&more, NULL);
            atomic_store(&stop, 1);
            pthread_join(thread, NULL);
            _exit(rc == 0 && hung == 0 ? 0 : 1);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed_rounds++;
    }
    if (failed_rounds)
        fprintf(stderr, "%d of %d rounds had a child stuck in its first call\n", failed_rounds, ROUNDS);
    CHECK(failed_rounds == 0);
    return ctest_finish("reaper_fork_during_first_use");
}
