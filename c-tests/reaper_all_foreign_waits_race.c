/* Under the all-children handler (zreap_install(0)), the program's own
 * waitpid(pid) calls race the handler's passes for plain fork() children
 * that exit all at once, while a thread loops in zwait(-1):
 * - every child nobody waits for is still reaped by the handler: no zombie
 *   is left once the waitpid() calls have returned;
 * - the zwait(-1) loop ends with ECHILD once the last child is gone;
 * - each exit reaches exactly one caller, with its code.
 * A pass once stopped its walk of the exited children at the first one a
 * foreign wait took between the pass's look and its reap: the children
 * behind it stayed zombies until the next SIGCHLD, and a zwait(-1) slept for
 * good once waitpid() calls took them. The window is two system calls
 * wide: this program found it in every run with a 200 us sleep put between
 * the pass's look and its reap, and in none of the runs made without. */
#include "ctest.h"
#include <pthread.h>

#define CHILDREN 48
#define WAITERS 6
/* Children i with i % GROUPS >= WAITERS are nobody's: the handler's. */
#define GROUPS 8
#define ROUNDS 100

static pid_t pids[CHILDREN];
/* Per child: exits delivered, by anyone. */
static int delivered[CHILDREN];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void got(pid_t pid, int status) {
    pthread_mutex_lock(&mu);
    for (int i = 0; i < CHILDREN; i++) {
        if (pids[i] == pid) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == i);
            delivered[i]++;
        }
    }
    pthread_mutex_unlock(&mu);
}

/* waitpid(pid, WNOHANG) in a loop over this group's children, so that
 * the reaps fall at any moment of the handler's passes. */
static void *foreign_waits(void *arg) {
    int group = (int)(long)arg;
    int left = 0;
    for (int i = group; i < CHILDREN; i += GROUPS) left++;
    int done[CHILDREN] = {0};
    while (left > 0) {
        for (int i = group; i < CHILDREN; i += GROUPS) {
            if (done[i]) continue;
            int st = -1;
            pid_t r = waitpid(pids[i], &st, WNOHANG);
            if (r == 0) continue;
            if (r == pids[i]) {
                got(r, st);
            } else {
                /* The handler took it first. */
                CHECK(r == -1 && errno == ECHILD);
            }
            done[i] = 1;
            left--;
        }
    }
    return NULL;
}

static volatile int any_done;

static void *any_waits(void *arg) {
    (void)arg;
    for (;;) {
        int st = -1;
        pid_t r = zwait(-1, &st, 0);
        if (r < 0) {
            CHECK(errno == ECHILD);
            break;
        }
        got(r, st);
    }
    any_done = 1;
    return NULL;
}

static void collect(pid_t pid, int status, void *ctx) {
    (void)ctx;
    got(pid, status);
}

int main(void) {
    ctest_start();
    CHECK(zreap_install(0) == 0);
    int stuck = 0;
    for (int round = 0; round < ROUNDS && ctest_failures == 0; round++) {
        int p[2];
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        memset(delivered, 0, sizeof delivered);
        for (int i = 0; i < CHILDREN; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                char c;
                close(p[1]);
                (void)!read(p[0], &c, 1);
                _exit(i);
            }
            CHECK(pid > 0);
            pids[i] = pid;
        }
        close(p[0]);
        pthread_t waiters[WAITERS], any;
        for (long g = 0; g < WAITERS; g++) CHECK(pthread_create(&waiters[g], NULL, foreign_waits, (void *)g) == 0);
        any_done = 0;
        CHECK(pthread_create(&any, NULL, any_waits, NULL) == 0);
        close(p[1]);
        for (int g = 0; g < WAITERS; g++) CHECK(pthread_join(waiters[g], NULL) == 0);
        WAIT_UNTIL(ctest_children() == 0, 5000);
        if (ctest_children() != 0) {
            fprintf(stderr, "round %d: %d zombies left after the last waitpid returned\n", round, ctest_zombies());
            stuck++;
            break;
        }
        WAIT_UNTIL(any_done, 5000);
        if (!any_done) {
            fprintf(stderr, "round %d: zwait(-1) still blocked 5 s after the last child was gone\n", round);
            stuck++;
            break;
        }
        CHECK(pthread_join(any, NULL) == 0);
        CHECK(zreap_all(collect, NULL) >= 0);
        for (int i = 0; i < CHILDREN; i++) CHECK(delivered[i] == 1);
    }
    CHECK(stuck == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("reaper_all_foreign_waits_race");
}
