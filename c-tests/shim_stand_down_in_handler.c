/* shim_stand_down_in_handler.c: zreap's library has the shim stand down while
 * the shim's SIGCHLD wrapper runs the program's handler in another thread.
 * The wrapper must not go on to take a child the library made meanwhile.
 *
 * Usage: shim_stand_down_in_handler FLAGS (zreap_install's flags, -1: none)
 * Thread A takes SIGCHLD (main blocks it); a plain child exits and A runs the
 * program's handler, which sleeps 300 ms and reaps nothing. 50 ms in, main
 * uses the library and zspawns a child that exits at once, and zwaits for it
 * only at 850 ms: by then the wrapper, back from the handler, has looked for
 * more exited children. */
#include "ctest.h"
#include <pthread.h>

static void slow_handler(int sig) {
    (void)sig;
    struct timespec t = {0, 300 * 1000 * 1000};
    nanosleep(&t, NULL);
}

static void *take_signals(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv) {
    ctest_start();
    int flags = ctest_flags_arg(argc, argv);
    struct sigaction sa = {0};
    sa.sa_handler = slow_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
    pthread_t a;
    CHECK(pthread_create(&a, NULL, take_signals, NULL) == 0);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, NULL);
    pid_t plain = fork();
    if (plain == 0) _exit(3);
    CHECK(plain > 0);
    ctest_sleep_ms(50);
    if (flags >= 0) CHECK(zreap_install((unsigned)flags) == 0);
    char *av[] = {"sh", "-c", "exit 7", NULL};
    pid_t pid = zspawn("/bin/sh", av, NULL, NULL);
    CHECK(pid > 0);
    ctest_sleep_ms(800);
    int st = -1;
    pid_t got = zwait(pid, &st, 0);
    if (got != pid) fprintf(stderr, "zwait(%d) returned %d\n", (int)pid, (int)got);
    CHECK(got == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    /* The plain child: the shim's store or the kernel has it, or zreap's
     * all-children scope took it. */
    st = -1;
    got = waitpid(plain, &st, 0);
    if (got != plain && flags >= 0 && (flags & ZREAP_OWN) == 0) got = zwait(plain, &st, WNOHANG);
    CHECK(got == plain && WIFEXITED(st) && WEXITSTATUS(st) == 3);
    CHECK(ctest_zombies() == 0);
    return ctest_finish("shim_stand_down_in_handler");
}
