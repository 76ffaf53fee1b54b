/* Proves the library is fork-safe: with zreap_install(0), one thread loops
 * zspawn("/bin/true") + zwait() and another loops zreap_all(), while the main thread
 * does a plain fork() 400 times. Each child (alarm(10): a deadlock kills it with
 * SIGALRM) calls zspawn + zwait + zreap_all + zreap_stats_get and exits 0 only if
 * all worked. The parent collects each child's status (zwait(), or the zreap_all()
 * thread's callback when that thread got the exit first: each exit is delivered
 * exactly once) and requires exit 0, never a SIGALRM death. */
#include "ctest.h"

#include <pthread.h>
#include <stdatomic.h>

#define FORKS 400
#define LOG_CAP (1 << 17)

static atomic_int stop, spawner_failures, spawner_loops, reaper_loops;

/* Exits delivered to the zreap_all() thread, in delivery order. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { pid_t pid; int status; } exit_log[LOG_CAP];
static int log_len, log_overflow;

static void log_exit(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    pthread_mutex_lock(&log_lock);
    if (log_len < LOG_CAP) {
        exit_log[log_len].pid = pid;
        exit_log[log_len].status = wstatus;
        log_len++;
    } else {
        log_overflow++;
    }
    pthread_mutex_unlock(&log_lock);
}

/* Looks up `pid` in the log at or after `from`; returns 1 and its status if found. */
static int find_logged(pid_t pid, int from, int *status) {
    int found = 0;
    pthread_mutex_lock(&log_lock);
    for (int i = from; i < log_len; i++)
        if (exit_log[i].pid == pid) {
            *status = exit_log[i].status;
            found = 1;
        }
    pthread_mutex_unlock(&log_lock);
    return found;
}

static int log_mark(void) {
    pthread_mutex_lock(&log_lock);
    int n = log_len;
    pthread_mutex_unlock(&log_lock);
    return n;
}

static void *spawner(void *arg) {
    (void)arg;
    char *argv[] = {"true", NULL};
    for (int i = 0; i < 20000 && !atomic_load(&stop); i++) {
        pid_t pid = zspawn("/bin/true", argv, NULL, NULL);
        if (pid <= 0) {
            atomic_fetch_add(&spawner_failures, 1);
            continue;
        }
        int st = -1;
        pid_t r = zwait(pid, &st, 0);
        /* The zreap_all() thread may have been delivered this exit first; then
         * zwait() must return -1/ECHILD (and not block). */
        if (!(r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) && !(r == -1 && errno == ECHILD))
            atomic_fetch_add(&spawner_failures, 1);
        atomic_fetch_add(&spawner_loops, 1);
    }
    return NULL;
}

static void *reaper(void *arg) {
    (void)arg;
    struct timespec pause = {0, 50000}; /* 50 us: busy, without starving the others */
    while (!atomic_load(&stop)) {
        if (zreap_all(log_exit, NULL) < 0) atomic_fetch_add(&spawner_failures, 1);
        atomic_fetch_add(&reaper_loops, 1);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static int child_main(void) {
    alarm(10);
    char *argv[] = {"true", NULL};
    pid_t pid = zspawn("/bin/true", argv, NULL, NULL);
    if (pid <= 0) return 2;
    int st = -1;
    if (zwait(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 3;
    if (zreap_all(NULL, NULL) < 0) return 4;
    zreap_stats s;
    if (zreap_stats_get(&s) != 0) return 5;
    return 0;
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    CHECK(zreap_install(0) == 0);

    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, spawner, NULL) == 0);
    CHECK(pthread_create(&t2, NULL, reaper, NULL) == 0);

    int ok = 0, alarmed = 0, other = 0, lost = 0;
    for (int i = 0; i < FORKS; i++) {
        int mark = log_mark();
        pid_t pid = fork();
        if (pid == 0) _exit(child_main());
        CHECK(pid > 0);
        if (pid <= 0) continue;
        /* Poll rather than block, so that a zwait() that is never woken shows up
         * as a failed check instead of a hang. */
        int st = -1, werr = 0;
        pid_t r = 0;
        for (int w = 0; w < 15000 && r == 0; w++) {
            r = zwait(pid, &st, WNOHANG);
            werr = errno;
            if (r == 0) ctest_sleep_ms(1);
        }
        CHECK(r != 0);
        if (r != pid) {
            CHECK(r == -1 && werr == ECHILD);
            /* Delivered to the zreap_all() thread: its callback logs it. */
            WAIT_UNTIL(find_logged(pid, mark, &st), 10000);
            if (!find_logged(pid, mark, &st)) {
                lost++;
                continue;
            }
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            ok++;
        } else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
            fprintf(stderr, "fork child %d hung (killed by SIGALRM)\n", i);
            if (++alarmed == 3) break; /* enough: each one costs 10 s */
        } else {
            if (other++ < 5) fprintf(stderr, "fork child %d: status 0x%x\n", i, st);
        }
    }
    atomic_store(&stop, 1);
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 30;
    int j1 = pthread_timedjoin_np(t1, NULL, &limit);
    int j2 = pthread_timedjoin_np(t2, NULL, &limit);
    CHECK(j1 == 0); /* the spawner thread is not stuck in zwait() */
    CHECK(j2 == 0);
    if (j1 != 0 || j2 != 0) return ctest_finish("reaper_fork_safety");

    CHECK(ok == FORKS);
    CHECK(alarmed == 0);
    CHECK(other == 0);
    CHECK(lost == 0);
    CHECK(atomic_load(&spawner_failures) == 0);
    CHECK(atomic_load(&spawner_loops) > 0);
    CHECK(atomic_load(&reaper_loops) > 0);
    CHECK(log_overflow == 0);
    printf("spawner loops %d, reaper loops %d\n", atomic_load(&spawner_loops),
           atomic_load(&reaper_loops));

    zreap_all(log_exit, NULL);
    WAIT_UNTIL(ctest_children() == 0, 10000);
    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0);
    CHECK(s.tracked == 0);
    CHECK(zreap_uninstall() == 0);
    return ctest_finish("reaper_fork_safety");
}
