/* shim_fork_beside_sigaction.c: a fork while another thread changes the
 * SIGCHLD disposition. The child must start with a whole disposition, the old
 * one or the new one (what sigaction tells it and what the kernel runs), and
 * be free to change it; the parent's waitpid must get the child's status.
 * The shim failed three ways: its record of the program's disposition reached
 * the child half-written and locked by a thread the child does not have (the
 * child hung in its first sigaction(SIGCHLD)); a child forked while the other
 * thread loaded the shim's core crashed in it; a waitpid that went to the
 * kernel before the core loaded answered ECHILD once the core's handler had
 * reaped the child.
 *
 * A second thread flips SIGCHLD between a handler and the default without
 * pause while the main thread forks 2,000 children. Each child reads the
 * disposition, checks it against the two, sets a handler and the default
 * again, and exits 0. A child that hangs is killed by its own alarm after
 * 10 s; the parent counts it and stops forking. */
#include "ctest.h"

#include <pthread.h>
#include <stdatomic.h>

#define CHILDREN 2000

static atomic_int stop;

static void on_chld(int sig) { (void)sig; }

static void *flip(void *unused) {
    (void)unused;
    struct sigaction handler = {0}, dfl = {0};
    handler.sa_handler = on_chld;
    handler.sa_flags = SA_RESTART;
    dfl.sa_handler = SIG_DFL;
    while (!atomic_load(&stop)) {
        sigaction(SIGCHLD, &handler, NULL);
        sigaction(SIGCHLD, &dfl, NULL);
    }
    return NULL;
}

/* In the child: 0 when its disposition is whole and can be changed. */
static int child_checks(void) {
    alarm(10);
    struct sigaction old, handler = {0};
    if (sigaction(SIGCHLD, NULL, &old) != 0) return 3;
    if (old.sa_handler != on_chld && old.sa_handler != SIG_DFL) return 4;
    if (old.sa_handler == on_chld && !(old.sa_flags & SA_RESTART)) return 5;
    handler.sa_handler = on_chld;
    if (sigaction(SIGCHLD, &handler, &old) != 0) return 6;
    if (signal(SIGCHLD, SIG_DFL) != on_chld) return 7;
    return 0;
}

int main(void) {
    ctest_start();
    pthread_t flipper;
    CHECK(pthread_create(&flipper, NULL, flip, NULL) == 0);
    int bad = 0, hung = 0;
    for (int i = 0; i < CHILDREN && !hung; i++) {
        pid_t child = fork();
        if (child == 0) _exit(child_checks());
        CHECK(child > 0);
        if (child < 0) break;
        int status;
        pid_t got;
        do got = waitpid(child, &status, 0);
        while (got < 0 && errno == EINTR);
        CHECK(got == child);
        if (got != child) break;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
            hung++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (bad++ < 5) fprintf(stderr, "child %d: status 0x%x\n", i, status);
        }
    }
    atomic_store(&stop, 1);
    CHECK(pthread_join(flipper, NULL) == 0);
    CHECK(hung == 0);
    CHECK(bad == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("shim_fork_beside_sigaction");
}
