/* Run under the preload shim with ZREAP_REAP=all (preload/tests/preload.rs):
 * the reaper thread the shim starts at the first child.
 *
 *   shim_bare_thread unprivileged : run as a user that cannot change its
 *       credentials. The thread is one glibc never made (a bare clone), so
 *       glibc still counts one thread, and fork stays on its single-threaded
 *       path; the thread never writes the main thread's errno (it has no
 *       TLS of its own); pthread_exit in main ends the process.
 *   shim_bare_thread privileged   : run as root. The thread is a pthread,
 *       which glibc's setuid and friends keep in step.
 *
 * In both: children never waited for are reaped, and a later waitpid still
 * gets each one's own status. Prints one line per check; exits 0 only if
 * every check held (the unprivileged run exits through pthread_exit).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    fflush(stdout);
    failures += !ok;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static int tasks(void) {
    DIR *dir = opendir("/proc/self/task");
    if (dir == NULL) {
        perror("opendir /proc/self/task");
        exit(2);
    }
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        n += entry->d_name[0] != '.';
    }
    closedir(dir);
    return n;
}

/* Children of this process that are zombies, from /proc. */
static int zombies(void) {
    DIR *proc = opendir("/proc");
    if (proc == NULL) {
        perror("opendir /proc");
        exit(2);
    }
    int found = 0;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        int pid = atoi(entry->d_name);
        if (pid <= 0) {
            continue;
        }
        char path[64], line[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *stat = fopen(path, "r");
        if (stat == NULL) {
            continue;
        }
        if (fgets(line, sizeof line, stat) != NULL) {
            char *after_name = strrchr(line, ')');
            char state;
            int ppid;
            if (after_name != NULL && sscanf(after_name + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() &&
                state == 'Z') {
                found++;
            }
        }
        fclose(stat);
    }
    closedir(proc);
    return found;
}

static pid_t child_exiting(int code) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        _exit(code);
    }
    return pid;
}

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "unprivileged") != 0 && strcmp(argv[1], "privileged") != 0)) {
        fprintf(stderr, "usage: shim_bare_thread unprivileged|privileged\n");
        return 2;
    }
    int bare = strcmp(argv[1], "unprivileged") == 0;

    enum { CHILDREN = 5 };
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = child_exiting(10 + i);
    }
    int left = -1;
    for (int tries = 0; tries < 500 && (left = zombies()) != 0; tries++) {
        sleep_ms(10);
    }
    check(left == 0, "children never waited for are reaped by the shim's thread");
    check(tasks() == 2, "the shim runs one thread of its own");
    if (bare) {
        check(__libc_single_threaded == 1, "glibc still counts one thread");
    } else {
        check(__libc_single_threaded == 0, "glibc counts the shim's pthread");
    }
    for (int i = 0; i < CHILDREN; i++) {
        int status = 0;
        pid_t got = waitpid(pids[i], &status, 0);
        check(got == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 10 + i,
              "a later waitpid gets the child's own status");
    }

    /* While children are being made the thread wakes every 20 ms, and its
     * futex waits time out (ETIMEDOUT): none of that may show in errno, which
     * this checks for 10 ms after each of 200 children. */
    long changed = 0;
    for (int round = 0; round < 200; round++) {
        child_exiting(0);
        errno = 12345;
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
            if (errno != 12345) {
                changed++;
                break;
            }
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 10000000L);
    }
    check(changed == 0, "the main thread's errno is never changed by the shim's thread");
    left = -1;
    for (int tries = 0; tries < 500 && (left = zombies()) != 0; tries++) {
        sleep_ms(10);
    }
    check(left == 0, "the children of the errno loop are reaped too");

    if (failures != 0 || !bare) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        return failures != 0;
    }
    /* The last thread glibc knows ends: the process must end with it. */
    printf("main calls pthread_exit\n");
    fflush(stdout);
    pthread_exit(NULL);
}
