/* The first zspawn() with a pdeathsig starts the library's spawner thread. A
 * plain fork() by another thread while that start is under way must leave a
 * child that starts a spawner of its own: the child's zspawn() with a
 * pdeathsig must not send its request to a thread that exists only in the
 * parent (it blocked for ever). The window exists once per process, so each
 * trial is a fresh process; a child that hangs ends with SIGALRM after 3 s. */
#include "ctest.h"
#include <pthread.h>
#include <stdatomic.h>

enum { HUNG = 99 };

static char *true_argv[] = {"true", NULL};
static atomic_int go, stop;

static pid_t spawn_with_pdeathsig(void) {
    zspawn_options o;
    zspawn_options_init(&o);
    o.pdeathsig = SIGTERM;
    return zspawn("/bin/true", true_argv, NULL, &o);
}

static void *forker(void *arg) {
    (void)arg;
    while (!atomic_load(&go)) {
    }
    while (!atomic_load(&stop)) {
        pid_t c = fork();
        if (c == 0) {
            alarm(3);
            pid_t p = spawn_with_pdeathsig();
            if (p > 0) zwait(p, NULL, 0);
            _exit(p > 0 ? 0 : 2);
        }
        int st;
        if (c > 0 && waitpid(c, &st, 0) == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) _exit(HUNG);
    }
    return NULL;
}

/* 1 when a fork child hung. */
static int trial(void) {
    pid_t t = fork();
    if (t == 0) {
        pthread_t th;
        if (pthread_create(&th, NULL, forker, NULL) != 0) _exit(3);
        atomic_store(&go, 1);
        usleep(200);
        pid_t p = spawn_with_pdeathsig();
        if (p > 0) zwait(p, NULL, 0);
        atomic_store(&stop, 1);
        pthread_join(th, NULL);
        _exit(0);
    }
    int st;
    CHECK(waitpid(t, &st, 0) == t);
    CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == HUNG));
    return WIFEXITED(st) && WEXITSTATUS(st) == HUNG;
}

int main(void) {
    ctest_start();
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int trials = 0, hung = 0;
    do {
        hung += trial();
        trials++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (!hung && trials < 2000 && now.tv_sec - start.tv_sec < 20);
    if (hung) fprintf(stderr, "a fork child's zspawn(pdeathsig) hung, in trial %d\n", trials);
    CHECK(hung == 0);
    CHECK(ctest_children() == 0);
    return ctest_finish("spawn_service_fork_race");
}
