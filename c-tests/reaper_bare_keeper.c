/* The keeper (the internal thread that holds tracked children's pidfds) is a
 * thread glibc never made wherever the process cannot change its credentials:
 * glibc still counts one thread, so the program's own fork() stays on its
 * single-threaded path, and pthread_exit in main still ends the process.
 * Where credentials can change (root) it is a pthread, which setuid keeps in
 * step. Run as root, this checks the pthread; run as any other user (the
 * harness runs it as uid 65534 too), the bare thread.
 *
 * In both: main's errno is untouched while the keeper reaps children; exits
 * keep their statuses; a forked child of the program tracks children of its
 * own without a keeper thread; no zombie is left. And in a second process
 * (this program run with "from-thread"), the keeper is started by a thread
 * that then ends, and a later thread (which glibc may give the ended one's
 * memory) sees its errno untouched too. The unprivileged run ends through
 * pthread_exit. */
#include "ctest.h"

#include <pthread.h>
#include <spawn.h>
#include <sys/single_threaded.h>

extern char **environ;

/* One user id, one group id, not root, no permitted capability. */
static int credentials_fixed(void) {
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) {
        return 0;
    }
    if (ru == 0 || ru != eu || ru != su || rg != eg || rg != sg) {
        return 0;
    }
    FILE *status = fopen("/proc/self/status", "r");
    if (status == NULL) {
        return 0;
    }
    char line[256];
    int none = 0;
    while (fgets(line, sizeof line, status) != NULL) {
        if (strncmp(line, "CapPrm:", 7) == 0) {
            none = strtoull(line + 7, NULL, 16) == 0;
        }
    }
    fclose(status);
    return none;
}

static char *true_argv[] = {"true", NULL};

static void *start_keeper(void *arg) {
    (void)arg;
    int st = -1;
    pid_t pid = zspawn("/bin/true", true_argv, NULL, NULL);
    CHECK(pid > 0 && zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return NULL;
}

/* Tracked children come and go (the keeper receives, watches, reaps and
 * records them) until `stop` is set; returns how many. */
static volatile int stop;

static void *churn(void *arg) {
    (void)arg;
    long n = 0;
    do { /* at least one child, however late this thread runs */
        int st = -1;
        pid_t pid = zspawn("/bin/true", true_argv, NULL, NULL);
        CHECK(pid > 0 && zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        n++;
    } while (!stop);
    return (void *)n;
}

/* Spins 50 times 10 ms with errno set, while another thread churns: returns
 * how many times errno changed under it. */
static void *errno_rounds(void *arg) {
    (void)arg;
    long changed = 0;
    for (int round = 0; round < 50; round++) {
        changed += !ctest_errno_steady_ms(10);
    }
    stop = 1;
    return (void *)changed;
}

/* The keeper started by a thread that then ends (the second process): a
 * later thread spins while main churns. */
static int from_thread(void) {
    CHECK(zreap_install(ZREAP_OWN) == 0);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, start_keeper, NULL) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    /* pthread_join returns once the kernel has cleared the thread's tid,
     * which is before the thread leaves /proc/self/task. */
    WAIT_UNTIL(ctest_tasks() <= 2, 10000);
    ctest_say(ctest_tasks() == 2, "the keeper outlives the thread that started it");
    void *changed = NULL;
    CHECK(pthread_create(&thread, NULL, errno_rounds, NULL) == 0);
    long churned = (long)churn(NULL);
    CHECK(pthread_join(thread, &changed) == 0);
    printf("%ld children came and went meanwhile\n", churned);
    ctest_say(churned > 0 && changed == NULL, "a later thread's errno is never changed by the keeper");
    ctest_say(ctest_zombies() == 0, "no zombie is left by the second process");
    return ctest_finish("reaper_bare_keeper from-thread");
}

int main(int argc, char **argv) {
    ctest_start();
    if (argc == 2 && strcmp(argv[1], "from-thread") == 0) {
        return from_thread();
    }
    int bare = credentials_fixed();
    printf("credentials %s: the keeper should be %s\n", bare ? "fixed" : "changeable",
           bare ? "a bare thread" : "a pthread");
    CHECK(zreap_install(ZREAP_OWN) == 0);

    start_keeper(NULL);
    ctest_say(ctest_tasks() == 2, "the keeper runs, a thread of its own");
    if (bare) {
        ctest_say(__libc_single_threaded == 1, "glibc still counts one thread");
    } else {
        ctest_say(__libc_single_threaded == 0, "glibc counts the keeper's pthread");
    }
    /* From here on glibc counts threads: main spins while one churns. */
    pthread_t churner;
    void *churned = NULL;
    CHECK(pthread_create(&churner, NULL, churn, NULL) == 0);
    void *changed = errno_rounds(NULL);
    CHECK(pthread_join(churner, &churned) == 0);
    printf("%ld children came and went meanwhile\n", (long)churned);
    ctest_say(churned != NULL && changed == NULL, "main's errno is never changed by the keeper");

    enum { CHILDREN = 5 };
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        char script[32];
        snprintf(script, sizeof script, "exit %d", 10 + i);
        char *sh_argv[] = {"sh", "-c", script, NULL};
        pids[i] = zspawn("/bin/sh", sh_argv, NULL, NULL);
        CHECK(pids[i] > 0);
    }
    for (int i = CHILDREN - 1; i >= 0; i--) {
        int st = -1;
        CHECK(zwait(pids[i], &st, 0) == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 10 + i);
    }

    /* The program's own fork: the child has no keeper and tracks its own. */
    pid_t forked = fork();
    if (forked == 0) {
        int st = -1;
        pid_t pid = zspawn("/bin/sh", (char *[]){"sh", "-c", "exit 7", NULL}, NULL, NULL);
        int ok = pid > 0 && zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7;
        _exit(ok && ctest_tasks() == 1 ? 0 : 1);
    }
    int st = -1;
    CHECK(forked > 0 && waitpid(forked, &st, 0) == forked);
    ctest_say(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a forked child tracks children of its own, without a keeper");

    pid_t second = -1;
    char *second_argv[] = {argv[0], "from-thread", NULL};
    CHECK(posix_spawn(&second, "/proc/self/exe", NULL, NULL, second_argv, environ) == 0);
    st = -1;
    CHECK(second > 0 && waitpid(second, &st, 0) == second);
    ctest_say(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the second process kept its promises");
    ctest_say(ctest_zombies() == 0, "no zombie is left");

    if (ctest_failures != 0 || !bare) {
        return ctest_finish("reaper_bare_keeper");
    }
    /* The last thread glibc knows ends (the churner has): the process must end
     * with it, although the keeper's thread lives on. */
    printf("reaper_bare_keeper: ok; main calls pthread_exit\n");
    pthread_exit(NULL);
}
