/* shim_jobcontrol.c: a child stopped with SIGSTOP and continued with SIGCONT;
 * the program waits with WUNTRACED|WCONTINUED (then with waitid and
 * WSTOPPED|WCONTINUED|WEXITED) and must see stop, continue, then exit.
 *
 * Usage: shim_jobcontrol nohandler | handler
 *   handler: an SA_SIGINFO SIGCHLD handler that only records si_code is
 *   installed (it never waits); the codes it saw are printed.
 * The output does not depend on pids, so it must be the same with and
 * without the shim. */
#include "ctest.h"

static volatile sig_atomic_t ncodes;
static int codes[64];

static void on_chld(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)ctx;
    if (ncodes < 64) {
        codes[ncodes] = info->si_code;
        ncodes = ncodes + 1;
    }
}

static const char *code_name(int c) {
    switch (c) {
    case CLD_EXITED: return "exited";
    case CLD_KILLED: return "killed";
    case CLD_DUMPED: return "dumped";
    case CLD_STOPPED: return "stopped";
    case CLD_CONTINUED: return "continued";
    case CLD_TRAPPED: return "trapped";
    default: return "?";
    }
}

/* A child that waits for one byte on `gate`, then exits with `code`. */
static pid_t start_child(int *gate_w, int code) {
    int gate[2];
    CHECK(pipe(gate) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(gate[1]);
        char c;
        while (read(gate[0], &c, 1) == -1 && errno == EINTR) {
        }
        _exit(code);
    }
    close(gate[0]);
    *gate_w = gate[1];
    return pid;
}

/* Waits until the handler has seen `n` codes (with a handler), else a bit. */
static void settle(int handler, int n) {
    if (handler)
        WAIT_UNTIL(ncodes >= n, 2000);
    else
        ctest_sleep_ms(20);
}

static void print_waitpid(int st) {
    if (WIFSTOPPED(st))
        printf("waitpid: stopped by %d\n", WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        printf("waitpid: continued\n");
    else if (WIFEXITED(st))
        printf("waitpid: exited %d\n", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("waitpid: killed by %d\n", WTERMSIG(st));
    else
        printf("waitpid: status %#x\n", st);
}

int main(int argc, char **argv) {
    ctest_start();
    int handler = argc > 1 && strcmp(argv[1], "handler") == 0;
    if (handler) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_chld;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
    }

    /* waitpid with WUNTRACED | WCONTINUED */
    int gate;
    pid_t pid = start_child(&gate, 5);
    int st = 0;
    CHECK(kill(pid, SIGSTOP) == 0);
    CHECK(waitpid(pid, &st, WUNTRACED | WCONTINUED) == pid);
    CHECK(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
    print_waitpid(st);
    settle(handler, 1);
    /* the stop is reported once: nothing more now */
    CHECK(waitpid(pid, &st, WUNTRACED | WCONTINUED | WNOHANG) == 0);
    CHECK(kill(pid, SIGCONT) == 0);
    CHECK(waitpid(pid, &st, WUNTRACED | WCONTINUED) == pid);
    CHECK(WIFCONTINUED(st));
    print_waitpid(st);
    settle(handler, 2);
    CHECK(write(gate, "x", 1) == 1);
    close(gate);
    CHECK(waitpid(pid, &st, WUNTRACED | WCONTINUED) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    print_waitpid(st);
    settle(handler, 3);
    CHECK_ERR(waitpid(pid, &st, WUNTRACED | WCONTINUED | WNOHANG), ECHILD);

    /* waitid with WSTOPPED | WCONTINUED | WEXITED, for any child */
    pid = start_child(&gate, 6);
    siginfo_t info;
    CHECK(kill(pid, SIGSTOP) == 0);
    memset(&info, 0, sizeof info);
    CHECK(waitid(P_ALL, 0, &info, WSTOPPED | WCONTINUED | WEXITED) == 0);
    CHECK(info.si_pid == pid && info.si_code == CLD_STOPPED && info.si_status == SIGSTOP);
    printf("waitid: %s %d\n", code_name(info.si_code), info.si_status);
    settle(handler, 4);
    CHECK(kill(pid, SIGCONT) == 0);
    memset(&info, 0, sizeof info);
    CHECK(waitid(P_ALL, 0, &info, WSTOPPED | WCONTINUED | WEXITED) == 0);
    CHECK(info.si_pid == pid && info.si_code == CLD_CONTINUED);
    printf("waitid: %s %d\n", code_name(info.si_code), info.si_status);
    settle(handler, 5);
    CHECK(write(gate, "x", 1) == 1);
    close(gate);
    memset(&info, 0, sizeof info);
    CHECK(waitid(P_ALL, 0, &info, WSTOPPED | WCONTINUED | WEXITED) == 0);
    CHECK(info.si_pid == pid && info.si_code == CLD_EXITED && info.si_status == 6);
    printf("waitid: %s %d\n", code_name(info.si_code), info.si_status);
    settle(handler, 6);
    CHECK_ERR(waitid(P_ALL, 0, &info, WEXITED | WNOHANG), ECHILD);

    if (handler) {
        ctest_sleep_ms(50);
        printf("handler saw %d:", (int)ncodes);
        for (int i = 0; i < ncodes; i++) printf(" %s", code_name(codes[i]));
        printf("\n");
    }
    CHECK(ctest_children() == 0);
    return ctest_finish("shim_jobcontrol");
}
