/* shim_popen_system.c: popen/pclose and system() return their commands'
 * statuses. Each check is repeated ROUNDS times to catch a race with a
 * SIGCHLD handler (the shim's or the program's).
 *
 * Usage: shim_popen_system dfl       (SIGCHLD at its default: popen and system)
 *        shim_popen_system waiter    (a SIGCHLD handler that calls wait() once
 *                                     is installed: system only; with such a
 *                                     handler popen/pclose loses the status
 *                                     even without the shim: the program's bug) */
#include "ctest.h"

#define ROUNDS 20

static volatile sig_atomic_t handler_calls;

static void wait_once(int sig) {
    (void)sig;
    int saved = errno, st;
    handler_calls++;
    wait(&st);
    errno = saved;
}

static void check_popen(void) {
    /* reading */
    FILE *f = popen("echo hello from popen; exit 3", "r");
    CHECK(f != NULL);
    if (f) {
        char line[128] = "";
        CHECK(fgets(line, sizeof line, f) != NULL);
        CHECK(strcmp(line, "hello from popen\n") == 0);
        CHECK(fgets(line, sizeof line, f) == NULL);
        int st = pclose(f);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 3)) fprintf(stderr, "pclose(r) returned %#x\n", st);
        CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 3);
    }
    /* writing: the command reads what we write */
    f = popen("read line; test \"$line\" = ping && exit 4; exit 1", "w");
    CHECK(f != NULL);
    if (f) {
        CHECK(fputs("ping\n", f) >= 0);
        int st = pclose(f);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 4)) fprintf(stderr, "pclose(w) returned %#x\n", st);
        CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 4);
    }
    /* modes glibc refuses (EINVAL, no child) and ones it takes */
    const char *bad_modes[] = {"rw", "wr", "rq", "x", "", "er+"};
    for (size_t i = 0; i < sizeof bad_modes / sizeof *bad_modes; i++) {
        errno = 0;
        FILE *bad = popen("exit 0", bad_modes[i]);
        if (bad != NULL || errno != EINVAL) fprintf(stderr, "popen mode \"%s\" was taken\n", bad_modes[i]);
        CHECK(bad == NULL && errno == EINVAL);
        if (bad) pclose(bad);
    }
    f = popen("exit 2", "er");
    CHECK(f != NULL && fcntl(fileno(f), F_GETFD) == FD_CLOEXEC);
    if (f) CHECK(WEXITSTATUS(pclose(f)) == 2);
    /* two streams open at once, closed in the other order */
    FILE *a = popen("echo a; exit 5", "r");
    FILE *b = popen("echo b; exit 6", "r");
    CHECK(a != NULL && b != NULL);
    if (a && b) {
        char la[16] = "", lb[16] = "";
        CHECK(fgets(lb, sizeof lb, b) != NULL && strcmp(lb, "b\n") == 0);
        CHECK(fgets(la, sizeof la, a) != NULL && strcmp(la, "a\n") == 0);
        int sb = pclose(b), sa = pclose(a);
        CHECK(sb != -1 && WIFEXITED(sb) && WEXITSTATUS(sb) == 6);
        CHECK(sa != -1 && WIFEXITED(sa) && WEXITSTATUS(sa) == 5);
    }
}

static void check_system(void) {
    int st = system("exit 7");
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 7)) fprintf(stderr, "system(exit 7) returned %#x\n", st);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    st = system("true");
    CHECK(st == 0);
    st = system("kill -KILL $$");
    CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK(system(NULL) != 0);
}

int main(int argc, char **argv) {
    ctest_start();
    int waiter = argc > 1 && strcmp(argv[1], "waiter") == 0;
    if (waiter) CHECK(signal(SIGCHLD, wait_once) != SIG_ERR);

    for (int r = 0; r < ROUNDS; r++) {
        if (!waiter) check_popen();
        check_system();
    }
    if (ctest_failures) fprintf(stderr, "(mode %s)\n", waiter ? "waiter" : "dfl");

    /* nothing left behind */
    WAIT_UNTIL(ctest_children() == 0, 2000);
    CHECK(ctest_children() == 0);
    printf("%s: %d rounds\n", waiter ? "waiter" : "dfl", ROUNDS);
    return ctest_finish("shim_popen_system");
}
