/* ZREAP_REAP=all. A program with a SIGCHLD handler blocks SIGCHLD and waits
 * for any child (wait4(-1), blocking); a SIGALRM handler leaves that wait
 * with siglongjmp (as a REPL does on ^C), which puts the old mask back.
 * Later the program sets SIGCHLD to SIG_DFL and makes a child it never waits
 * for: under `all` the shim must reap it (no zombie within 2 s). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
static sigjmp_buf env;
static void on_chld(int s) { (void)s; }
static void on_alrm(int s) { (void)s; siglongjmp(env, 1); }
static char state_of(pid_t p) {
    char path[64], buf[256]; snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
    FILE *f = fopen(path, "r"); if (!f) return '-';
    size_t n = fread(buf, 1, sizeof buf - 1, f); fclose(f); buf[n] = 0;
    char *rp = strrchr(buf, ')'); return rp ? rp[2] : '?';
}
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld; sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_alrm; sigaction(SIGALRM, &sa, NULL);
    pid_t sleeper = fork();
    if (sleeper == 0) { sleep(10); _exit(0); }
    if (sigsetjmp(env, 1) == 0) {
        sigset_t c; sigemptyset(&c); sigaddset(&c, SIGCHLD);
        sigprocmask(SIG_BLOCK, &c, NULL);
        struct itimerval it = {{0, 0}, {0, 100000}};
        setitimer(ITIMER_REAL, &it, NULL);
        wait4(-1, NULL, 0, NULL);
        printf("wait returned?\n");
    }
    /* back here, SIGCHLD unblocked again */
    signal(SIGCHLD, SIG_DFL);
    pid_t z = fork();
    if (z == 0) _exit(3);
    char st = '?';
    for (int i = 0; i < 200; i++) { usleep(10000); st = state_of(z); if (st == '-') break; }
    printf("unwaited child %d after 2 s: %s\n", (int)z, st == '-' ? "reaped" : st == 'Z' ? "ZOMBIE" : "still there");
    kill(sleeper, SIGKILL);
    waitpid(sleeper, NULL, 0);
    waitpid(z, NULL, 0);
    printf("%s\n", st == '-' ? "PASS" : "FAIL");
    return st == '-' ? 0 : 1;
}
