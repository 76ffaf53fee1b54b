/* Proves that zdaemonize() collects its intermediate process, and only it:
 *  - a plain fork() child of the caller that exited before zdaemonize() is
 *    still there for the caller's own waitpid() afterwards;
 *  - 100 daemonizations in a loop (ZDAEMON_RETURN, each daemon _exit(0)s at
 *    once), no zreap_install(): every daemon comes back to us (subreaper) and
 *    our waitpid(-1) collects each one, exit 0; it never returns a pid we were
 *    not told (an intermediate); no zombie and no child is left;
 *  - the same with zreap_install(0) active: the handler reaps the daemons and
 *    zreap_all() delivers exactly the 100 daemon pids, never an intermediate;
 *    nothing is dropped or left tracked, zwait(-1) has nothing left;
 *  - the same from a multi-threaded caller whose other thread keeps calling
 *    zreap_all() and malloc() meanwhile: no hang (the deadline would kill us),
 *    again exactly the daemons are delivered. */
#include "ctest_tree.h"

#include <pthread.h>
#include <sys/mman.h>

#define ROUNDS 100
#define THREADED_ROUNDS 50

/* The daemons we were told about, and every exit collected. An exit may be
 * collected (by the other thread in part 3) before zdaemonize() has returned
 * its pid, so they are matched at the end. */
static pid_t daemons[ROUNDS];
static int ndaemons;
static struct {
    pid_t pid;
    int status;
} exits[4 * ROUNDS];
static int nexits;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Shared memory (no fd, so it survives the daemon's closing of fds): daemon i
 * stores its session id, which is the pid of its intermediate. */
static volatile pid_t *intermediates;

static void reset(void) {
    ndaemons = nexits = 0;
}

static void record(pid_t pid, int wstatus) {
    pthread_mutex_lock(&lock);
    if (nexits < 4 * ROUNDS) {
        exits[nexits].pid = pid;
        exits[nexits].status = wstatus;
        nexits++;
    }
    pthread_mutex_unlock(&lock);
}

/* How many of the daemons have an exit collected. */
static int daemons_collected(void) {
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < ndaemons; i++)
        for (int e = 0; e < nexits; e++)
            if (exits[e].pid == daemons[i]) {
                n++;
                break;
            }
    pthread_mutex_unlock(&lock);
    return n;
}

/* Matches exits to daemons: each daemon once, exit status 0, no other pid. */
static void report(const char *what, int want) {
    pthread_mutex_lock(&lock);
    int collected = 0, unknown = 0, bad_status = 0;
    for (int e = 0; e < nexits; e++) {
        int i = 0;
        while (i < ndaemons && daemons[i] != exits[e].pid) i++;
        if (i == ndaemons) {
            int k = 0;
            while (k < ROUNDS && intermediates[k] != exits[e].pid) k++;
            if (unknown++ < 5)
                fprintf(stderr, "  %s: an exit of pid %d, which is no daemon we were told about%s\n", what,
                        (int)exits[e].pid, k < ROUNDS ? " but a daemon's intermediate (its session id)" : "");
            continue;
        }
        daemons[i] = -daemons[i]; /* collected: never matches again */
        collected++;
        if (!WIFEXITED(exits[e].status) || WEXITSTATUS(exits[e].status) != 0) bad_status++;
    }
    if (collected != want || unknown || bad_status)
        fprintf(stderr, "  %s: %d of %d daemons collected, %d other exits, %d bad statuses\n", what, collected,
                want, unknown, bad_status);
    CHECK(collected == want);
    CHECK(unknown == 0);
    CHECK(bad_status == 0);
    pthread_mutex_unlock(&lock);
}

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)ctx;
    record(pid, wstatus);
}

static void daemonize_rounds(int rounds) {
    for (int i = 0; i < rounds; i++) {
        zdaemon_options o;
        zdaemon_options_init(&o);
        o.flags = ZDAEMON_RETURN;
        intermediates[i] = 0;
        pid_t pid = zdaemonize(&o);
        if (pid == 0) {
            intermediates[i] = getsid(0);
            _exit(0);
        }
        CHECK(pid > 0);
        if (pid > 0) {
            pthread_mutex_lock(&lock);
            daemons[ndaemons++] = pid;
            pthread_mutex_unlock(&lock);
        }
    }
}

static volatile int stop_thread;

/* The other thread: zreap_all() and malloc() in a loop. */
static void *busy(void *arg) {
    (void)arg;
    while (!stop_thread) {
        zreap_all(on_exit_cb, NULL);
        free(malloc(1 + (size_t)(rand() % 4096)));
    }
    return NULL;
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds;
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
    intermediates = mmap(NULL, ROUNDS * sizeof(pid_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(intermediates != MAP_FAILED);
    if (intermediates == MAP_FAILED) return ctest_finish("daemon_loop");

    /* 0. Another child of ours that exited already is left for our waitpid(). */
    pid_t other = fork();
    if (other == 0) _exit(7);
    WAIT_UNTIL(ctest_is_zombie(other), 10000);
    CHECK(ctest_is_zombie(other));
    zdaemon_options o;
    zdaemon_options_init(&o);
    o.flags = ZDAEMON_RETURN;
    pid_t d = zdaemonize(&o);
    if (d == 0) {
        alarm(30);
        pause();
        _exit(0);
    }
    CHECK(d > 0);
    int st = -1;
    pid_t got = waitpid(other, &st, WNOHANG);
    if (got != other)
        fprintf(stderr, "  zdaemonize() reaped our exited child %d: waitpid() gives %d (%s)\n", (int)other,
                (int)got, got == -1 ? strerror(errno) : "");
    CHECK(got == other && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    if (d > 0) {
        kill(d, SIGKILL);
        CHECK(reap_within(d, &st, 10000) == d);
    }
    CHECK(kill_children() == 0);
    zreap_all(NULL, NULL); /* forget what the library may have taken */

    /* 1. No handler: our waitpid() collects exactly the daemons. */
    reset();
    daemonize_rounds(ROUNDS);
    CHECK(ndaemons == ROUNDS);
    for (long waited = 0; daemons_collected() < ndaemons && waited < 20000;) {
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid > 0) {
            record(pid, st);
        } else if (pid == -1 && errno == ECHILD) {
            break; /* nothing left to wait for */
        } else {
            ctest_sleep_ms(5);
            waited += 5;
        }
    }
    report("waitpid()", ROUNDS);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_children() == 0);
    CHECK(kill_children() == 0);
    int held = zreap_all(NULL, NULL);
    if (held > 0) fprintf(stderr, "  waitpid(): zreap_all() then delivered %d exits the library had reaped\n", held);

    /* 2. zreap_install(0): the handler reaps the daemons, zreap_all() delivers them. */
    CHECK(zreap_install(0) == 0);
    zreap_stats s0, s1;
    CHECK(zreap_stats_get(&s0) == 0);
    reset();
    daemonize_rounds(ROUNDS);
    CHECK(ndaemons == ROUNDS);
    for (long waited = 0; daemons_collected() < ndaemons && waited < 20000; waited += 5) {
        zreap_all(on_exit_cb, NULL);
        if (daemons_collected() < ndaemons) ctest_sleep_ms(5);
    }
    report("zreap_install(0) + zreap_all()", ROUNDS);
    CHECK(zreap_stats_get(&s1) == 0);
    CHECK(s1.dropped == s0.dropped);
    CHECK(s1.tracked == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_children() == 0);
    CHECK_ERR(zwait(-1, &st, WNOHANG), ECHILD);

    /* 3. A multi-threaded caller; the other thread reaps and allocates. */
    reset();
    stop_thread = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, busy, NULL) == 0);
    daemonize_rounds(THREADED_ROUNDS);
    CHECK(ndaemons == THREADED_ROUNDS);
    for (long waited = 0; daemons_collected() < ndaemons && waited < 20000; waited += 5) ctest_sleep_ms(5);
    stop_thread = 1;
    CHECK(pthread_join(t, NULL) == 0);
    zreap_all(on_exit_cb, NULL);
    report("a second thread in zreap_all()", THREADED_ROUNDS);
    CHECK(zreap_stats_get(&s1) == 0);
    CHECK(s1.tracked == 0);
    CHECK(ctest_zombies() == 0);
    CHECK(ctest_children() == 0);

    CHECK(zreap_uninstall() == 0);
    CHECK(kill_children() == 0);
    return ctest_finish("daemon_loop");
}
