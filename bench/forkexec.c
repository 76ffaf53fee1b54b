/* The shim benchmark's host program: N times fork + execve(CHILD) + waitpid
 * (CHILD: argv[2], default /bin/true), timed with CLOCK_MONOTONIC. Prints
 * "ns=<elapsed> n=<N> faults=<page faults of the loop, parent and children>
 * maps=<mappings of this process after the loop>" (a fork copies each mapping,
 * and the child's exec tears each down) and exits 0, or prints the failure on
 * stderr and exits 1. Compiled at bench time by
 * zreap-bench, then run with and without LD_PRELOAD=libzreap_preload.so.
 * With "thread" as argv[3] it first starts a thread that sleeps throughout:
 * what any second thread costs each fork (the shim's reaper thread is one). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void *sleep_throughout(void *unused) {
    (void)unused;
    for (;;) {
        pause();
    }
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 5000;
    char *child = argc > 2 ? argv[2] : "/bin/true";
    char *child_argv[] = {child, NULL};
    if (argc > 3 && strcmp(argv[3], "thread") == 0) {
        pthread_t thread;
        int rc = pthread_create(&thread, NULL, sleep_throughout, NULL);
        if (rc != 0) {
            fprintf(stderr, "forkexec: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    struct rusage self0, self1, children;
    getrusage(RUSAGE_SELF, &self0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == -1) {
            fprintf(stderr, "forkexec: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0) {
            execve(child, child_argv, environ);
            _exit(127);
        }
        int status;
        pid_t got;
        do {
            got = waitpid(pid, &status, 0);
        } while (got == -1 && errno == EINTR);
        if (got != pid) {
            fprintf(stderr, "forkexec: waitpid(%d) returned %d: %s\n", (int)pid, (int)got, strerror(errno));
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "forkexec: child %d ended with status %#x\n", (int)pid, status);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &self1);
    getrusage(RUSAGE_CHILDREN, &children);
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    long faults = self1.ru_minflt - self0.ru_minflt + children.ru_minflt;
    long maps = 0;
    FILE *list = fopen("/proc/self/maps", "r");
    if (list) {
        int c;
        while ((c = getc(list)) != EOF)
            maps += c == '\n';
        fclose(list);
    }
    printf("ns=%lld n=%ld faults=%ld maps=%ld\n", ns, n, faults, maps);
    return 0;
}
