/* shim_sigaction_races.c: SIGCHLD's disposition changed, queried or first
 * installed where something else happens at the same moment. Each case is a
 * run of its own (the shim's core loads once per process); the races that
 * are not certain to happen in one run are run several times by the test.
 *
 *   oneshot        a one-shot handler (sysv_signal) that installs itself again,
 *                  System V style: the reset comes before the call, as the
 *                  kernel does it, so the re-install stays (3 calls of 3).
 *   query          a SIGUSR1 handler asks for SIGCHLD's disposition while its
 *                  thread is inside sigaction(SIGCHLD): it must not wait for
 *                  its own thread.
 *   set-in-handler  a SIGUSR1 handler installs a SIGCHLD handler while its
 *                  thread is inside sigaction(SIGCHLD): it must not wait for
 *                  its own thread, and the kernel must end running what
 *                  sigaction reports.
 *   fork-in-handler  a SIGUSR1 handler forks while its thread is inside
 *                  sigaction(SIGCHLD); the child must end with the kernel
 *                  running what sigaction says, the disposition last set.
 *   fork-in-prepare US  another thread loads the shim's core while this one
 *                  is in fork()'s prepare handlers (which sleep US µs): the
 *                  child must run the shim or none, never a half-loaded one.
 *   _Fork          _Fork children made while another thread loads the core:
 *                  their first SIGCHLD handler (which needs the core) must be
 *                  installed, not wait for a load that is not theirs.
 *   errno          a waitpid that went to the kernel before the core loaded,
 *                  answered by the core: a success keeps errno.
 */
#include "ctest.h"

#include <pthread.h>
#include <stdatomic.h>

static void on_chld(int sig) { (void)sig; }

/* ------------------------------------------------------------ oneshot */

extern __sighandler_t sysv_signal(int, __sighandler_t);
static volatile sig_atomic_t oneshot_calls;
static void oneshot_handler(int sig) {
    (void)sig;
    oneshot_calls++;
    sysv_signal(SIGCHLD, oneshot_handler);
}

static void oneshot(void) {
    CHECK(sysv_signal(SIGCHLD, oneshot_handler) != SIG_ERR);
    for (int i = 0; i < 3; i++) {
        pid_t child = fork();
        if (child == 0) _exit(0);
        CHECK(child > 0);
        WAIT_UNTIL(oneshot_calls > i, 5000);
        waitpid(child, NULL, 0);
    }
    CHECK(oneshot_calls == 3);
    struct sigaction now;
    CHECK(sigaction(SIGCHLD, NULL, &now) == 0);
    CHECK(now.sa_handler == oneshot_handler);
}

/* ------------------------------------------- SIGUSR1 at the main thread */

static pthread_t main_thread;
static atomic_int stop_pestering;

static void *pester(void *unused) {
    (void)unused;
    while (!atomic_load(&stop_pestering)) {
        pthread_kill(main_thread, SIGUSR1);
        usleep(50);
    }
    return NULL;
}

/* Flips SIGCHLD between on_chld and the default while another thread sends
 * SIGUSR1 (handled by `on_usr1`) to this one, until `after_flip(i)` (called
 * after flip i, which set the handler when i is even) returns nonzero. */
static void flip_pestered(void (*on_usr1)(int), int (*after_flip)(long)) {
    main_thread = pthread_self();
    struct sigaction usr1 = {0}, handler = {0}, dfl = {0};
    usr1.sa_handler = on_usr1;
    usr1.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR1, &usr1, NULL) == 0);
    handler.sa_handler = on_chld;
    handler.sa_flags = SA_RESTART;
    dfl.sa_handler = SIG_DFL;
    pthread_t pesterer;
    CHECK(pthread_create(&pesterer, NULL, pester, NULL) == 0);
    for (long i = 0;; i++) {
        sigaction(SIGCHLD, (i & 1) ? &dfl : &handler, NULL);
        if (after_flip(i)) break;
    }
    atomic_store(&stop_pestering, 1);
    CHECK(pthread_join(pesterer, NULL) == 0);
}

static void query_usr1(int sig) {
    (void)sig;
    struct sigaction now;
    sigaction(SIGCHLD, NULL, &now);
}

static int after_20000(long i) { return i + 1 == 20000; }

static void query(void) { flip_pestered(query_usr1, after_20000); }

/* Does the kernel run a handler for SIGCHLD exactly when sigaction reports
 * on_chld? */
static int kernel_runs_what_sigaction_says(void) {
    struct sigaction record;
    if (sigaction(SIGCHLD, NULL, &record) != 0) return 0;
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } kernel;
    if (syscall(SYS_rt_sigaction, SIGCHLD, NULL, &kernel, 8) != 0) return 0;
    int says_handler = record.sa_handler == on_chld;
    int runs_handler = kernel.handler != (void *)SIG_DFL && kernel.handler != (void *)SIG_IGN;
    return says_handler == runs_handler;
}

/* set-in-handler */
static volatile sig_atomic_t sets_in_handler;

static void set_usr1(int sig) {
    (void)sig;
    int saved = errno;
    struct sigaction handler = {0};
    handler.sa_handler = on_chld;
    handler.sa_flags = SA_RESTART;
    if (sigaction(SIGCHLD, &handler, NULL) == 0) sets_in_handler++;
    errno = saved;
}

/* At least 20,000 flips and 10 handler runs (a loaded machine may give the
 * pestering thread no CPU during the first flips), within a bound. */
static int after_20000_and_10_sets(long i) { return (i + 1 >= 20000 && sets_in_handler >= 10) || i >= 100000000; }

static void set_in_handler(void) {
    flip_pestered(set_usr1, after_20000_and_10_sets);
    CHECK(sets_in_handler > 0);
    CHECK(kernel_runs_what_sigaction_says());
}

/* fork-in-handler: the first child made by a SIGUSR1 handler takes the
 * shim's state over (its waitpid) inside the handler, then goes back to the
 * interrupted sigaction; after that flip it checks itself and exits. */
static volatile sig_atomic_t in_child, forks, bad_children;

static void fork_usr1(int sig) {
    (void)sig;
    if (in_child || forks >= 300) return;
    int saved = errno;
    pid_t child = fork();
    if (child == 0) {
        waitpid(-1, NULL, WNOHANG);
        in_child = 1;
    } else if (child > 0) {
        int status;
        if (waitpid(child, &status, 0) == child) {
            forks++;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad_children++;
        }
    }
    errno = saved;
}

/* In the child: is the kernel consistent with sigaction, and is that the
 * disposition the flip before this check set (`last_handler`)? */
static int child_consistent(int last_handler) {
    struct sigaction record;
    if (sigaction(SIGCHLD, NULL, &record) != 0) return 0;
    return kernel_runs_what_sigaction_says() && (record.sa_handler == on_chld) == last_handler;
}

static int child_done_or_300_forks(long i) {
    if (in_child) _exit(child_consistent(!(i & 1)) ? 0 : 1);
    return forks >= 300;
}

static void fork_in_handler(void) {
    flip_pestered(fork_usr1, child_done_or_300_forks);
    CHECK(bad_children == 0);
}

/* ----------------------------------------------- a load in another thread */

static atomic_int go, loaded;

static void *load_core(void *unused) {
    (void)unused;
    while (!atomic_load(&go)) {
    }
    signal(SIGCHLD, on_chld); /* under ZREAP_REAP=handler the shim's core loads here */
    atomic_store(&loaded, 1);
    return NULL;
}

/* The child's work: a handler, and a child of its own waited for. */
static int child_runs_a_child(void) {
    alarm(5);
    struct sigaction sa = {0};
    sa.sa_handler = on_chld;
    if (sigaction(SIGCHLD, &sa, NULL) != 0) return 4;
    pid_t grandchild = fork();
    if (grandchild == 0) _exit(7);
    int status;
    if (waitpid(grandchild, &status, 0) != grandchild || !WIFEXITED(status) || WEXITSTATUS(status) != 7) return 5;
    return 0;
}

static long prepare_us;

static void prepare(void) {
    atomic_store(&go, 1);
    usleep((useconds_t)prepare_us);
}

static void fork_in_prepare(void) {
    CHECK(pthread_atfork(prepare, NULL, NULL) == 0);
    pthread_t loader;
    CHECK(pthread_create(&loader, NULL, load_core, NULL) == 0);
    pid_t child = fork();
    if (child == 0) _exit(child_runs_a_child());
    int status;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(pthread_join(loader, NULL) == 0);
}

static void underscore_fork(void) {
    /* The stub's lookups are made before the race (the first handler of any
     * signal makes them): a _Fork child of a threaded process may call only
     * async-signal-safe functions, and a dlsym there could wait for a lock
     * the loading thread holds. */
    struct sigaction usr2 = {0};
    usr2.sa_handler = on_chld;
    CHECK(sigaction(SIGUSR2, &usr2, NULL) == 0);
    pthread_t loader;
    CHECK(pthread_create(&loader, NULL, load_core, NULL) == 0);
    atomic_store(&go, 1);
    /* As many children as the load leaves time for, waited for afterwards. */
    static pid_t children[2000];
    int made = 0;
    while (!atomic_load(&loaded) && made < 2000) {
        pid_t child = _Fork();
        if (child == 0) {
            /* sigaction is async-signal-safe, and a SIGCHLD handler needs the
             * shim's core: its load is in flight in this process's copy. */
            alarm(5);
            struct sigaction sa = {0};
            sa.sa_handler = on_chld;
            _exit(sigaction(SIGCHLD, &sa, NULL) == 0 ? 0 : 3);
        }
        CHECK(child > 0);
        if (child < 0) break;
        children[made++] = child;
    }
    CHECK(pthread_join(loader, NULL) == 0);
    int hung = 0, failed = 0;
    for (int i = 0; i < made; i++) {
        int status;
        while (waitpid(children[i], &status, 0) < 0 && errno == EINTR) {
        }
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) hung++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    printf("_Fork children made during the load: %d\n", made);
    CHECK(hung == 0);
    CHECK(failed == 0);
}

static pid_t waited_child;

static void *install_then_kill(void *unused) {
    (void)unused;
    ctest_sleep_ms(20); /* the main thread is in waitpid by now */
    signal(SIGCHLD, on_chld);
    kill(waited_child, SIGKILL);
    ctest_sleep_ms(100); /* SIGCHLD is handled on this thread */
    return NULL;
}

static void errno_kept(void) {
    waited_child = fork();
    if (waited_child == 0) {
        pause();
        _exit(0);
    }
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(pthread_sigmask(SIG_BLOCK, &chld, NULL) == 0); /* the handler runs in the other thread */
    pthread_t installer;
    CHECK(pthread_create(&installer, NULL, install_then_kill, NULL) == 0);
    int status = 0;
    errno = 4321;
    pid_t got = waitpid(waited_child, &status, 0);
    int after = errno;
    CHECK(got == waited_child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(after == 4321);
    CHECK(pthread_join(installer, NULL) == 0);
}

int main(int argc, char **argv) {
    ctest_start();
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "oneshot") == 0) oneshot();
    else if (strcmp(what, "query") == 0) query();
    else if (strcmp(what, "set-in-handler") == 0) set_in_handler();
    else if (strcmp(what, "fork-in-handler") == 0) fork_in_handler();
    else if (strcmp(what, "fork-in-prepare") == 0 && argc > 2) {
        prepare_us = atol(argv[2]);
        fork_in_prepare();
    }
    else if (strcmp(what, "_Fork") == 0) underscore_fork();
    else if (strcmp(what, "errno") == 0) errno_kept();
    else {
        fprintf(stderr, "usage: %s oneshot|query|set-in-handler|fork-in-handler|fork-in-prepare MICROSECONDS|_Fork|errno\n", argv[0]);
        return 2;
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    CHECK(ctest_zombies() == 0);
    return ctest_finish("shim_sigaction_races");
}
