/* A foreign waitpid() and the library never both get a tracked child's status.
 * A foreign waitpid(pid) blocked on a tracked child races the library's keeper
 * thread, which reaps each tracked child the moment it exits: whichever wins,
 * exactly one of waitpid() and zwait() gets the status and the other ECHILD,
 * without a hang, in every scope, and the library forgets the child
 * (stats.tracked back to 0). */
#include "ctest.h"

#define ROUNDS 30

/* A tracked child that waits on a pipe until *release is closed. */
static pid_t start_child(int use_zfork, int *release) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid;
    if (use_zfork) {
        pid = zfork(NULL);
        if (pid == 0) {
            char c;
            close(p[1]);
            (void)!read(p[0], &c, 1);
            _exit(5);
        }
    } else {
        char *argv[] = {"sh", "-c", "read x; exit 5", NULL};
        zspawn_options opts;
        zspawn_options_init(&opts);
        opts.stdin_fd = p[0];
        pid = zspawn("/bin/sh", argv, NULL, &opts);
    }
    CHECK(pid > 0);
    close(p[0]);
    *release = p[1];
    return pid;
}

static void race(const char *scope, int use_zfork) {
    int foreign = 0, library = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int release;
        pid_t pid = start_child(use_zfork, &release);
        int st = -1;
        close(release);
        pid_t got = waitpid(pid, &st, 0);
        if (got == pid) {
            foreign++;
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
            CHECK_ERR(zwait(pid, &st, 0), ECHILD);
        } else {
            CHECK(got == -1 && errno == ECHILD);
            library++;
            st = -1;
            CHECK(zwait(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 5);
        }
        CHECK_ERR(zwait(pid, &st, WNOHANG), ECHILD);
    }
    zreap_stats s;
    CHECK(zreap_stats_get(&s) == 0 && s.tracked == 0);
    CHECK(ctest_zombies() == 0);
    fprintf(stderr, "  scope %s, %s: foreign waitpid won %d, the library %d\n", scope,
            use_zfork ? "zfork" : "zspawn", foreign, library);
}

int main(void) {
    ctest_start();
    race("none", 0);
    race("none", 1);
    CHECK(zreap_install(0) == 0);
    race("all", 0);
    race("all", 1);
    CHECK(zreap_uninstall() == 0);
    CHECK(zreap_install(ZREAP_OWN) == 0);
    race("own", 0);
    race("own", 1);
    return ctest_finish("reaper_stolen");
}
