/* Run under strace by capi/tests/syscalls.rs, which counts the system calls
 * this process's threads complete per child exit.
 *
 *   count_syscalls MODE ROUNDS
 *
 * LIVE children (cat, reading a pipe; started as the rounds' children are)
 * stay alive throughout, as in a program with other children running: a
 * SIGCHLD then finds other tracked children that may have exited too.
 * Each round starts a child (cat, reading a pipe) and lets everything settle,
 * then, between two markers (write(-1, "zreap-begin") and write(-1,
 * "zreap-end")), releases the child by closing the pipe, waits for its exit as
 * MODE says, and sleeps 20 ms so that every thread is done. The host's own
 * calls in the window are the close, the sleep and, in the poll modes, the
 * poll; everything else is the cost of one exit. MODE:
 *   raw     posix_spawn + waitpid(pid): the kernel baseline;
 *   zwait   zreap_install(ZREAP_OWN), zspawn + blocking zwait(pid);
 *   nowait  no install, zspawn + blocking zwait(pid);
 *   zwait-all  zreap_install(0) (the all-children scope), zspawn + blocking
 *           zwait(pid);
 *   fd      zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER), poll(zreap_fd()) +
 *           zreap_all();
 *   fd-own  zreap_install(ZREAP_OWN), poll(zreap_fd()) + zreap_all();
 *   fork-raw  the window holds a plain fork() whose child _exits at once, and
 *           the parent's waitpid: the kernel and glibc baseline of the child;
 *   fork    the same beside zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER),
 *           zreap_fd() and one tracked child alive (so the keeper runs): what
 *           the library's fork handlers cost the child.
 * At the end it prints the ids of its threads ("tids: ...") and of the tracked
 * child of the fork mode ("tracked: ...", whose calls count for neither) on
 * stdout. */
#include "ctest.h"
#include <dirent.h>
#include <poll.h>
#include <spawn.h>

extern char **environ;

static void marker(const char *text) { (void)!write(-1, text, strlen(text)); }

static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)wstatus;
    *(pid_t *)ctx = pid;
}

/* zspawn of cat reading `stdin_fd`. */
static pid_t zspawn_cat(int stdin_fd) {
    char *argv[] = {"cat", NULL};
    zspawn_options o;
    zspawn_options_init(&o);
    o.stdin_fd = stdin_fd;
    return zspawn("/bin/cat", argv, NULL, &o);
}

/* A cat reading `stdin_fd`, started as `mode` starts its children. */
static pid_t start_cat(const char *mode, int stdin_fd) {
    if (strcmp(mode, "raw") != 0) return zspawn_cat(stdin_fd);
    char *argv[] = {"cat", NULL};
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
    CHECK(posix_spawn(&pid, "/bin/cat", &fa, NULL, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

#define LIVE 10

static void round_trip(const char *mode) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = start_cat(mode, p[0]);
    CHECK(pid > 0);
    close(p[0]);
    ctest_sleep_ms(20);
    marker("zreap-begin");
    close(p[1]);
    int st = -1;
    if (strcmp(mode, "raw") == 0) {
        CHECK(waitpid(pid, &st, 0) == pid);
    } else if (strncmp(mode, "fd", 2) == 0) {
        struct pollfd pfd = {zreap_fd(), POLLIN, 0};
        int ready;
        while ((ready = poll(&pfd, 1, 10000)) == -1 && errno == EINTR) {
        }
        CHECK(ready == 1);
        pid_t got = 0;
        CHECK(zreap_all(on_exit_cb, &got) == 1 && got == pid);
        st = 0;
    } else {
        CHECK(zwait(pid, &st, 0) == pid);
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ctest_sleep_ms(20);
    marker("zreap-end");
}

/* One round of the fork modes: the child makes no call of its own. */
static void fork_round(void) {
    marker("zreap-begin");
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    CHECK(pid > 0);
    int st = -1;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    marker("zreap-end");
}

int main(int argc, char **argv) {
    ctest_start();
    CHECK(argc == 3);
    const char *mode = argv[1];
    int rounds = atoi(argv[2]);
    if (strcmp(mode, "zwait") == 0 || strcmp(mode, "fd-own") == 0) CHECK(zreap_install(ZREAP_OWN) == 0);
    if (strcmp(mode, "zwait-all") == 0) CHECK(zreap_install(0) == 0);
    if (strcmp(mode, "fd") == 0) CHECK(zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER) == 0);
    if (strncmp(mode, "fd", 2) == 0) CHECK(zreap_fd() >= 0);
    if (strncmp(mode, "fork", 4) == 0) {
        int p[2] = {-1, -1};
        pid_t tracked = -1;
        if (strcmp(mode, "fork") == 0) {
            CHECK(zreap_install(ZREAP_OWN | ZREAP_NO_HANDLER) == 0);
            CHECK(zreap_fd() >= 0);
            CHECK(pipe2(p, O_CLOEXEC) == 0);
            tracked = zspawn_cat(p[0]);
            CHECK(tracked > 0);
            close(p[0]);
        }
        printf("tracked: %d\n", (int)tracked);
        fork_round(); /* warm-up, a window too */
        for (int i = 0; i < rounds; i++) fork_round();
        if (tracked > 0) {
            close(p[1]);
            int st = -1;
            CHECK(zwait(tracked, &st, 0) == tracked);
        }
    } else {
        int live_pipe[2];
        CHECK(pipe2(live_pipe, O_CLOEXEC) == 0);
        pid_t live[LIVE];
        for (int i = 0; i < LIVE; i++) CHECK((live[i] = start_cat(mode, live_pipe[0])) > 0);
        close(live_pipe[0]);
        round_trip(mode); /* warm-up, a window too */
        for (int i = 0; i < rounds; i++) round_trip(mode);
        close(live_pipe[1]);
        for (int i = 0; i < LIVE; i++) {
            int st = -1;
            if (strcmp(mode, "raw") == 0) {
                CHECK(waitpid(live[i], &st, 0) == live[i]);
            } else {
                CHECK(zwait(live[i], &st, 0) == live[i]);
            }
        }
    }
    printf("tids:");
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') printf(" %s", e->d_name);
    if (d) closedir(d);
    printf("\n");
    return ctest_finish("count_syscalls");
}
