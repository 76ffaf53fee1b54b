/* shim_zreap_program.c: a program that uses zreap's library itself, run under
 * the preload shim (a script run by `zreap run` may start one). The library
 * reaps its children through pidfds and answers zwait from its own records;
 * the shim, which would reap them too (its handler wrapper, or its thread
 * under ZREAP_REAP=all), leaves them to it from the library's first use on.
 *
 * Usage: shim_zreap_program FLAGS
 *   FLAGS: zreap_install's flags, or -1 for no zreap_install.
 * First a plain fork() child that exits 3 and is waited for only at the end
 * (under ZREAP_REAP=all the shim's thread has stored it by then); then 100
 * children from zspawn and zfork, alternately, each exiting 5: three in four
 * waited for at once (a blocking zwait, which lost the status now and then to
 * a shim that reaped beside the library) and one in four after it exited. */
#include "ctest.h"

static pid_t make(int i) {
    if (i % 2) {
        pid_t pid = zfork(NULL);
        if (pid == 0) _exit(5);
        return pid;
    }
    char *argv[] = {"sh", "-c", "exit 5", NULL};
    return zspawn("/bin/sh", argv, NULL, NULL);
}

int main(int argc, char **argv) {
    ctest_start();
    int flags = ctest_flags_arg(argc, argv);
    pid_t plain = fork();
    if (plain == 0) _exit(3);
    CHECK(plain > 0);
    ctest_sleep_ms(50);
    if (flags >= 0) CHECK(zreap_install((unsigned)flags) == 0);
    for (int i = 0; i < 100; i++) {
        pid_t pid = make(i);
        CHECK(pid > 0);
        if (i % 4 == 3) ctest_sleep_ms(20);
        int st = -1;
        pid_t got = zwait(pid, &st, 0);
        if (got != pid) fprintf(stderr, "child %d (pid %d): zwait returned %d\n", i, (int)pid, (int)got);
        CHECK(got == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    }
    /* The plain child: the shim's store or the kernel has its status (zreap's
     * all-children scope may have reaped it too: then zwait has it). */
    int st = -1;
    pid_t got = waitpid(plain, &st, 0);
    if (got != plain && flags >= 0 && (flags & ZREAP_OWN) == 0) got = zwait(plain, &st, WNOHANG);
    CHECK(got == plain);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("shim_zreap_program");
}
