/* Run under the preload shim (preload/tests/preload.rs): when does the stub
 * load the core, libzreap_preload_core.so, and does the shim then work?
 *
 *   shim_lazy_core handler   : the core is not loaded at start, nor by a
 *                              fork and waitpid; a SIGCHLD handler loads it,
 *                              and the handler then runs once per exit.
 *   shim_lazy_core all       : the core is not loaded at start; the first
 *                              fork loads it, and a child never waited for
 *                              is reaped (ZREAP_REAP is unset before the
 *                              fork: the setting read at start-up holds).
 *   shim_lazy_core at-start  : the core is loaded before main.
 *   shim_lazy_core popen     : popen loads the core, so a stream opened
 *                              before the first SIGCHLD handler still gets
 *                              its status from pclose.
 *
 * With "chdir" as the second argument it first changes to "/" (the test
 * gives LD_PRELOAD as a relative path). Prints one line per check; exits 0
 * only if every check held.
 */
#include "ctest.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int core_loaded(void) {
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) {
        perror("fopen /proc/self/maps");
        exit(2);
    }
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, maps) != NULL) {
        if (strstr(line, "libzreap_preload_core.so") != NULL) {
            found = 1;
        }
    }
    fclose(maps);
    return found;
}

static volatile sig_atomic_t handler_calls;
static volatile sig_atomic_t sigchld_seen;

/* A handler that reaps nothing (the program waits elsewhere). */
static void note_sigchld(int sig) {
    (void)sig;
    sigchld_seen = 1;
}

/* A wait()-once handler: leaks zombies without the shim when exits coincide. */
static void on_sigchld(int sig) {
    (void)sig;
    int saved = errno;
    wait(NULL);
    handler_calls++;
    errno = saved;
}

/* Is `pid` reaped? Polls /proc for up to 10 s until it is gone or another
 * process's (pid reused); our child, running or a zombie, is not. */
static int reaped_within_10s(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            return 1;
        }
        char state = 0;
        int ppid = 0;
        int scanned = fscanf(f, "%*d (%*[^)]) %c %d", &state, &ppid);
        fclose(f);
        if (scanned == 2 && ppid != getpid()) {
            return 1; /* reused by another process: ours was reaped */
        }
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: shim_lazy_core handler|all|at-start [chdir]\n");
        return 2;
    }
    if (argc > 2 && strcmp(argv[2], "chdir") == 0 && chdir("/") != 0) {
        perror("chdir");
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "at-start") == 0) {
        ctest_say(core_loaded(), "the core is loaded before main");
    } else if (strcmp(mode, "handler") == 0) {
        ctest_say(!core_loaded(), "the core is not loaded at start");
        int status = 0;
        pid_t pid = ctest_child_exiting(3);
        ctest_say(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 3,
                  "waitpid returns the child's status");
        ctest_say(!core_loaded(), "fork and waitpid do not load the core");
        signal(SIGCHLD, SIG_IGN);
        signal(SIGCHLD, SIG_DFL);
        ctest_say(!core_loaded(), "SIG_IGN and SIG_DFL do not load the core");
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGCHLD);
        sigprocmask(SIG_BLOCK, &block, &old);
        signal(SIGCHLD, on_sigchld);
        ctest_say(core_loaded(), "a SIGCHLD handler loads the core");
        /* Five exits while SIGCHLD is blocked: one pending signal for all. */
        pid_t pids[5];
        for (int i = 0; i < 5; i++) {
            pids[i] = ctest_child_exiting(0);
        }
        for (int i = 0; i < 5; i++) {
            siginfo_t info;
            waitid(P_PID, (id_t)pids[i], &info, WEXITED | WNOWAIT);
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        int all_reaped = 1;
        for (int i = 0; i < 5; i++) {
            all_reaped &= reaped_within_10s(pids[i]);
        }
        ctest_say(all_reaped, "the wait()-once handler reaped five coinciding exits");
    } else if (strcmp(mode, "all") == 0) {
        ctest_say(!core_loaded(), "the core is not loaded at start");
        unsetenv("ZREAP_REAP");
        pid_t pid = ctest_child_exiting(0);
        int loaded = core_loaded();
        ctest_say(loaded, "the first fork loads the core");
        if (loaded) ctest_say(reaped_within_10s(pid), "a child never waited for is reaped");
    } else if (strcmp(mode, "popen") == 0) {
        FILE *stream = popen("read line; exit 5", "w");
        ctest_say(stream != NULL, "popen starts the command");
        ctest_say(core_loaded(), "popen loads the core");
        signal(SIGCHLD, note_sigchld);
        fputs("go\n", stream);
        fflush(stream);
        for (int i = 0; i < 1000 && !sigchld_seen; i++) {
            struct timespec ten_ms = {0, 10 * 1000 * 1000};
            nanosleep(&ten_ms, NULL);
        }
        ctest_say(sigchld_seen, "the command exited");
        int status = pclose(stream);
        ctest_say(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 5, "pclose returns the command's status");
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return ctest_failures == 0 ? 0 : 1;
}
