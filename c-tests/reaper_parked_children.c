/* Children made under zreap's handler are parked: the keeper holds their
 * pidfds without watching them, and the pass the handler runs at each
 * SIGCHLD reaps them. Every part runs twice, under zreap_install(0) (the
 * all-children handler, whose walk finds them) and under
 * zreap_install(ZREAP_OWN) (where all their children are zfork()'s), each in
 * a process of its own that must end within 30 s:
 * A. After zreap_uninstall() the keeper watches them again: they are reaped
 *    as they exit, with no call, and zreap_all() reports every exit with its
 *    status.
 * B. After zreap_uninstall() and zreap_install(ZREAP_OWN), a blocking
 *    zwait(-1) gets every exit and then ECHILD.
 * C. With SIGCHLD blocked after zreap_install() (no handler runs), a blocking
 *    zwait(pid) still returns the child's status and leaves no zombie.
 * D. With SIGCHLD set to SIG_IGN after zreap_install() (the kernel reaps),
 *    a blocking zwait(pid) returns -1/ECHILD.
 * E. Their exits do not wake the keeper: its voluntary context switches grow
 *    by far less than one per exit over ROUNDS zfork() + zwait() rounds (by
 *    at least one per exit when it watched their pidfds).
 * F. With SIGCHLD blocked after zreap_install(), a blocking zwait(-1) still
 *    gets every exit, of zfork() and of plain fork() children, then ECHILD.
 * G. The same with the program's own SIGCHLD handler (which reaps nothing)
 *    in place of zreap's.
 * H. After zreap_uninstall() and zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER),
 *    a blocking zwait(-1) gets every exit and then ECHILD.
 * I. With SIGCHLD blocked and read from a signalfd by another thread (which
 *    leaves nothing pending), a blocking zwait(-1) gets every exit.
 * J. As F, while another thread starts a child every 300 ms (each start wakes
 *    sleeping waits): the zwait(-1) loop ends before that thread is done.
 * K. Another thread blocks SIGCHLD and reads it from a signalfd, so it takes
 *    some of the signals before zreap's handler runs in the waiting thread
 *    (which does not block SIGCHLD): each blocking zwait(-1) still returns.
 * L, M, N. The program takes the child itself (its waitpid with SIGCHLD
 *    blocked; its own reaping SIGCHLD handler; SIG_IGN): a blocking zwait(-1)
 *    then answers ECHILD, as for a plain child, and does not sleep for good
 *    on a slot that no pass looks at. */
#include "ctest.h"

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>

#define K 8
#define ROUNDS 400

/* The flags of every part's zreap_install(): 0 or ZREAP_OWN. */
static unsigned scope;
static pid_t kids[K];
static int release_fd;

/* K children that each wait for the pipe to close, then exit 10 + i: from
 * plain_from on, made by plain fork() (not in the OWN scope, where plain
 * children are not zreap's), the others by zfork(). */
static void start_some_plain(int plain_from) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    for (int i = 0; i < K; i++) {
        kids[i] = i < plain_from || scope == ZREAP_OWN ? zfork(NULL) : fork();
        if (kids[i] == 0) {
            char c;
            close(p[1]);
            while (read(p[0], &c, 1) < 0 && errno == EINTR) {
            }
            _exit(10 + i);
        }
        CHECK(kids[i] > 0);
    }
    close(p[0]);
    release_fd = p[1];
}

static void start_children(void) {
    start_some_plain(K);
}

static int index_of(pid_t pid) {
    for (int i = 0; i < K; i++)
        if (kids[i] == pid) return i;
    return -1;
}

static int reported[K];

static void on_exit_cb(pid_t pid, int st, void *ctx) {
    (void)ctx;
    int i = index_of(pid);
    CHECK(i >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 10 + i);
    if (i >= 0) reported[i]++;
}

static void part_a(void) {
    CHECK(zreap_install(scope) == 0);
    start_children();
    CHECK(zreap_uninstall() == 0);
    close(release_fd);
    WAIT_UNTIL(ctest_children() == 0, 10000);
    CHECK(ctest_children() == 0);
    CHECK(zreap_all(on_exit_cb, NULL) == K);
    for (int i = 0; i < K; i++) CHECK(reported[i] == 1);
    CHECK(ctest_children() == 0);
    CHECK_ERR(zwait(-1, NULL, WNOHANG), ECHILD);
}

/* A blocking zwait(-1) loop gets each child's exit once, then ECHILD. */
static void wait_any_for_all(void) {
    int seen[K] = {0};
    for (int n = 0; n < K; n++) {
        int st = -1;
        pid_t got = zwait(-1, &st, 0);
        int i = index_of(got);
        CHECK(i >= 0);
        if (i < 0) break;
        seen[i]++;
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 10 + i);
    }
    for (int i = 0; i < K; i++) CHECK(seen[i] == 1);
    CHECK_ERR(zwait(-1, NULL, 0), ECHILD);
    CHECK(ctest_children() == 0);
}

static void part_b(void) {
    CHECK(zreap_install(scope) == 0);
    start_children();
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN) == 0);
    close(release_fd);
    wait_any_for_all();
}

static void part_c(void) {
    CHECK(zreap_install(scope) == 0);
    start_children();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
    close(release_fd);
    for (int i = 0; i < K; i++) {
        int st = -1;
        CHECK(zwait(kids[i], &st, 0) == kids[i]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 10 + i);
    }
    CHECK(ctest_children() == 0);
}

static void part_d(void) {
    CHECK(zreap_install(scope) == 0);
    start_children();
    CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
    close(release_fd);
    for (int i = 0; i < K; i++) CHECK_ERR(zwait(kids[i], NULL, 0), ECHILD);
    CHECK(ctest_children() == 0);
}

static void part_e(void) {
    CHECK(zreap_install(scope) == 0);
    int st = -1;
    pid_t first = zfork(NULL);
    if (first == 0) _exit(0);
    CHECK(first > 0 && zwait(first, &st, 0) == first);
    pid_t keeper = ctest_other_thread();
    CHECK(keeper > 0);
    ctest_sleep_ms(50);
    long before = ctest_thread_sleeps(keeper);
    CHECK(ctest_zfork_zwait_rounds(ROUNDS, 100));
    long woken = ctest_thread_sleeps(keeper) - before;
    printf("keeper woken %ld times by %d exits\n", woken, ROUNDS);
    CHECK(before >= 0 && woken < ROUNDS / 4);
    CHECK(ctest_children() == 0);
}

static void part_f(void) {
    CHECK(zreap_install(scope) == 0);
    start_some_plain(K / 2);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
    close(release_fd);
    wait_any_for_all();
}

/* Puts the program's own `handler` (SA_RESTART) in place of zreap's. */
static void set_sigchld_handler(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
}

static volatile sig_atomic_t program_handler_ran;

static void program_handler(int sig) {
    (void)sig;
    program_handler_ran = 1;
}

static void part_g(void) {
    CHECK(zreap_install(scope) == 0);
    start_some_plain(K / 2);
    set_sigchld_handler(program_handler);
    close(release_fd);
    wait_any_for_all();
    CHECK(program_handler_ran);
}

static void part_h(void) {
    CHECK(zreap_install(scope) == 0);
    start_children();
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER) == 0);
    close(release_fd);
    wait_any_for_all();
}

static sigset_t sigchld_only(void) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    return chld;
}

static volatile int stop_thread;
static int signalfd_fd;

static void *read_signalfd(void *arg) {
    struct signalfd_siginfo si;
    while (!stop_thread) {
        struct pollfd pfd = {signalfd_fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) > 0 && read(signalfd_fd, &si, sizeof si) < 0) break;
    }
    return arg;
}

static void part_i(void) {
    CHECK(zreap_install(scope) == 0);
    sigset_t chld = sigchld_only();
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
    signalfd_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    CHECK(signalfd_fd >= 0);
    start_some_plain(K / 2);
    pthread_t reader;
    CHECK(pthread_create(&reader, NULL, read_signalfd, NULL) == 0);
    close(release_fd);
    wait_any_for_all();
    stop_thread = 1;
    pthread_join(reader, NULL);
}

#define STARTS 30
static pid_t started[STARTS];
static volatile int starting_over;

/* Starts STARTS children that wait to be killed, one every 300 ms. */
static void *start_slowly(void *arg) {
    for (int i = 0; i < STARTS && !stop_thread; i++) {
        started[i] = zfork(NULL);
        if (started[i] == 0) {
            pause();
            _exit(0);
        }
        ctest_sleep_ms(300);
    }
    starting_over = 1;
    return arg;
}

static void part_j(void) {
    CHECK(zreap_install(scope) == 0);
    sigset_t chld = sigchld_only();
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
    start_some_plain(K / 2);
    /* Released before the starter runs: a child it forked while the pipe's
     * write end was open here would hold it, and the K children never end. */
    close(release_fd);
    pthread_t starter;
    CHECK(pthread_create(&starter, NULL, start_slowly, NULL) == 0);
    int seen[K] = {0};
    for (int n = 0; n < K; n++) {
        int st = -1;
        int i = index_of(zwait(-1, &st, 0));
        CHECK(i >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 10 + i);
        if (i < 0) break;
        seen[i]++;
    }
    CHECK(!starting_over);
    for (int i = 0; i < K; i++) CHECK(seen[i] == 1);
    stop_thread = 1;
    pthread_join(starter, NULL);
    /* All killed first: with SIGCHLD blocked each blocking wait may sleep
     * up to a second before its look, and one look reaps them all. */
    for (int i = 0; i < STARTS; i++)
        if (started[i] > 0) kill(started[i], SIGKILL);
    for (int i = 0; i < STARTS; i++)
        if (started[i] > 0) CHECK(zwait(started[i], NULL, 0) == started[i]);
    CHECK(ctest_children() == 0);
}

static void *read_signalfd_blocking(void *arg) {
    struct signalfd_siginfo si;
    while (read(signalfd_fd, &si, sizeof si) == sizeof si) {
    }
    return arg;
}

static void part_k(void) {
    CHECK(zreap_install(scope) == 0);
    sigset_t chld = sigchld_only(), old;
    CHECK(pthread_sigmask(SIG_BLOCK, &chld, &old) == 0);
    signalfd_fd = signalfd(-1, &chld, SFD_CLOEXEC);
    CHECK(signalfd_fd >= 0);
    pthread_t reader; /* inherits the blocked mask; it ends with the part */
    CHECK(pthread_create(&reader, NULL, read_signalfd_blocking, NULL) == 0);
    CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
    for (int round = 0; round < 10; round++) {
        pid_t kid = zfork(NULL);
        if (kid == 0) {
            ctest_sleep_ms(2);
            _exit(3);
        }
        int st = -1;
        if (kid < 0 || zwait(-1, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 3) {
            CHECK(!"zfork + zwait(-1) round");
            break;
        }
    }
    CHECK(ctest_children() == 0);
}

/* One zfork() child, gated: the program sets up how it takes the child
 * (`take`, which opens the gate by closing `gate_w`) before the child can
 * exit; then a blocking zwait(-1) must find no child left. */
static void taken_then_wait_any(void (*take)(pid_t, int)) {
    CHECK(zreap_install(scope) == 0);
    int gate[2];
    pid_t a = ctest_zfork_gated(gate, 7);
    take(a, gate[1]);
    CHECK_ERR(zwait(-1, NULL, 0), ECHILD);
    CHECK(ctest_children() == 0);
}

static void take_with_sigchld_blocked(pid_t a, int gate_w) {
    sigset_t chld = sigchld_only();
    CHECK(sigprocmask(SIG_BLOCK, &chld, NULL) == 0);
    close(gate_w);
    int st = -1;
    CHECK(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 7);
}

static void reap_everything(int sig) {
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static void take_with_own_handler(pid_t a, int gate_w) {
    set_sigchld_handler(reap_everything);
    close(gate_w);
    WAIT_UNTIL(ctest_children() == 0, 5000);
    (void)a;
}

static void take_with_sig_ign(pid_t a, int gate_w) {
    CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR);
    close(gate_w);
    WAIT_UNTIL(ctest_children() == 0, 5000);
    (void)a;
}

static void part_l(void) {
    taken_then_wait_any(take_with_sigchld_blocked);
}

static void part_m(void) {
    taken_then_wait_any(take_with_own_handler);
}

static void part_n(void) {
    taken_then_wait_any(take_with_sig_ign);
}

/* Runs one part in a child process, in a process group of its own with its
 * children; false when it failed or ran 30 s. The group is killed once the
 * part is over, and what it left is reaped here. */
static int run_in_scope(const char *name, void (*part)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        ctest_failures = 0; /* this part's own */
        part();
        _exit(ctest_failures ? 1 : 0);
    }
    setpgid(pid, pid);
    int st = -1;
    for (int ms = 0; ms < 30000 && waitpid(pid, &st, WNOHANG) == 0; ms += 10) ctest_sleep_ms(10);
    if (waitpid(pid, &st, WNOHANG) == 0) {
        fprintf(stderr, "part %s (scope %u) still running after 30 s\n", name, scope);
        kill(-pid, SIGKILL);
        waitpid(pid, &st, 0);
        return 0;
    }
    kill(-pid, SIGKILL); /* what a failed part left running */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "part %s (scope %u) failed\n", name, scope);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Runs one part in each scope. */
static int run(const char *name, void (*part)(void)) {
    int ok = 1;
    unsigned scopes[] = {0, ZREAP_OWN};
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
        scope = scopes[i];
        ok &= run_in_scope(name, part);
    }
    return ok;
}

int main(void) {
    ctest_start();
    (void)ctest_open_fds; /* unused here: keeps -Wunused-function quiet */
    /* A part's children that outlive it are reparented here. */
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    CHECK(run("A", part_a));
    CHECK(run("B", part_b));
    CHECK(run("C", part_c));
    CHECK(run("D", part_d));
    CHECK(run("E", part_e));
    CHECK(run("F", part_f));
    CHECK(run("G", part_g));
    CHECK(run("H", part_h));
    CHECK(run("I", part_i));
    CHECK(run("J", part_j));
    CHECK(run("K", part_k));
    CHECK(run("L", part_l));
    CHECK(run("M", part_m));
    CHECK(run("N", part_n));
    while (waitpid(-1, NULL, 0) > 0) {
    }
    return ctest_finish("reaper_parked_children");
}
