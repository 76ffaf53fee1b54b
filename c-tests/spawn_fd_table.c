/* Tracked children's pidfds stay out of the program's fd table (the keeper
 * thread holds them in a private one): with 200 live tracked children the
 * program has the same fds as with none, and a plain fork() child of the
 * program (the copy every posix_spawn/popen/system makes too) inherits none of
 * them. Before the keeper, each live tracked child held one fd here, copied by
 * every later fork and closed again by every exec. */
#include "ctest.h"

#define LIVE 200

int main(void) {
    ctest_start();
    CHECK(zreap_install(ZREAP_OWN) == 0);
    CHECK(zreap_fd() >= 0); /* the library's own fds, for its whole life */
    int gate[2];
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    int fds0 = ctest_open_fds();

    pid_t kids[LIVE];
    for (int i = 0; i < LIVE; i++) {
        if (i % 2) {
            kids[i] = zfork(NULL);
            if (kids[i] == 0) {
                char c;
                close(gate[1]);
                (void)!read(gate[0], &c, 1);
                _exit(i % 100);
            }
        } else {
            char code[16];
            snprintf(code, sizeof code, "exit %d", i % 100);
            char *argv[] = {"sh", "-c", "read x; exit $1", "sh", code + 5, NULL};
            zspawn_options o;
            zspawn_options_init(&o);
            o.stdin_fd = gate[0];
            kids[i] = zspawn("/bin/sh", argv, NULL, &o);
        }
        CHECK(kids[i] > 0);
    }
    CHECK(ctest_open_fds() == fds0);

    /* A plain fork() child counts what it inherited. */
    int report[2];
    CHECK(pipe2(report, O_CLOEXEC) == 0);
    pid_t plain = fork();
    if (plain == 0) {
        int n = ctest_open_fds();
        (void)!write(report[1], &n, sizeof n);
        _exit(0);
    }
    int inherited = -1;
    CHECK(read(report[0], &inherited, sizeof inherited) == (ssize_t)sizeof inherited);
    /* Our fds and the report pipe, no pidfd; the keeper's three fds (its
     * socket, epoll set and bell) are closed in a forked child. */
    CHECK(inherited == fds0 + 2 - 3);
    int st = -1;
    CHECK(waitpid(plain, &st, 0) == plain && WIFEXITED(st));
    close(report[0]);
    close(report[1]);

    close(gate[1]);
    close(gate[0]);
    for (int i = 0; i < LIVE; i++) {
        st = -1;
        CHECK(zwait(kids[i], &st, 0) == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == i % 100);
    }
    CHECK(ctest_children() == 0);
    CHECK(ctest_open_fds() == fds0 - 2);
    return ctest_finish("spawn_fd_table");
}
