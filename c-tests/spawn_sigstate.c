/* Proves: a zspawn()ed program starts with an empty signal mask and default
 * dispositions although the caller blocks SIGUSR1, ignores SIGPIPE and SIGINT
 * and catches SIGUSR2 — also when spawned from a thread that blocks every
 * signal — and the caller's own mask and dispositions are left unchanged.
 * The child is /bin/cat /proc/self/status (cat catches no signal itself; grep
 * would not do: GNU grep installs a SIGSEGV handler, so its SigCgt is not 0). */
#include "ctest_tree.h"

#include <poll.h>
#include <pthread.h>

static volatile sig_atomic_t got_usr2;
static void on_usr2(int sig) {
    (void)sig;
    got_usr2 = 1;
}

/* Spawns cat /proc/self/status and checks its SigBlk, SigIgn, SigCgt lines. */
static void check_child_clean(const char *where) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    zspawn_options o;
    zspawn_options_init(&o);
    o.stdout_fd = p[1];
    char *const argv[] = {"cat", "/proc/self/status", NULL};
    pid_t pid = zspawn("/bin/cat", argv, NULL, &o);
    int err = errno;
    close(p[1]);
    if (pid <= 0) {
        fprintf(stderr, "%s: zspawn failed: %s\n", where, strerror(err));
        ctest_failures++;
        close(p[0]);
        return;
    }
    char buf[8192];
    CHECK(read_until_eof(p[0], buf, sizeof buf) > 0);
    close(p[0]);
    int st = -1;
    CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);

    const char *keys[] = {"SigBlk:", "SigIgn:", "SigCgt:"};
    for (int i = 0; i < 3; i++) {
        char *line = strstr(buf, keys[i]);
        if (!line) {
            fprintf(stderr, "%s: no %s line in the child's status\n", where, keys[i]);
            ctest_failures++;
            continue;
        }
        char value[64] = "";
        sscanf(line + strlen(keys[i]), " %63s", value);
        if (strcmp(value, "0000000000000000") != 0) {
            fprintf(stderr, "%s: child's %s %s, want 0000000000000000\n", where, keys[i], value);
            ctest_failures++;
        }
    }
}

static void *thread_main(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    check_child_clean("from a thread blocking every signal");
    return NULL;
}

static void check_parent_unchanged(void) {
    sigset_t cur;
    CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0);
    CHECK(sigismember(&cur, SIGUSR1) == 1);
    CHECK(sigismember(&cur, SIGUSR2) == 0);
    CHECK(sigismember(&cur, SIGCHLD) == 0);
    struct sigaction sa;
    CHECK(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);
    CHECK(sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);
    CHECK(sigaction(SIGUSR2, NULL, &sa) == 0 && sa.sa_handler == on_usr2);
}

int main(void) {
    ctest_start();
    /* Keep clang's -Wunused-function quiet about ctest.h helpers this test does not use. */
    (void)ctest_sleep_ms;
    (void)ctest_open_fds;
    (void)ctest_zombies;
    (void)ctest_children;

    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &usr1, NULL) == 0);
    CHECK(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
    CHECK(signal(SIGINT, SIG_IGN) != SIG_ERR);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);

    check_child_clean("from the main thread");
    check_parent_unchanged();

    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    check_parent_unchanged();

    /* The handler still works in the parent. */
    CHECK(raise(SIGUSR2) == 0);
    CHECK(got_usr2 == 1);

    CHECK(ctest_children() == 0);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("spawn_sigstate");
}
