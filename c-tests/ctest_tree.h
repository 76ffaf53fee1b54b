/* Helpers for C tests that build process trees (a test process T that is a
 * subreaper, an intermediate P whose death the test controls, grandchildren
 * C): pipes with deadlines, waiting with a deadline, and cleanup of
 * everything left parented to T. */
#ifndef ZREAP_CTEST_TREE_H
#define ZREAP_CTEST_TREE_H

#include "ctest.h"

#include <poll.h>
#include <sys/stat.h>

/* Reads exactly len bytes, waiting at most ms for each chunk. 0 on success. */
static inline int read_full(int fd, void *buf, size_t len, int ms) {
    size_t n = 0;
    while (n < len) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = read(fd, (char *)buf + n, len - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        n += (size_t)k;
    }
    return 0;
}

/* Waits up to ms for the child pid to end: 1 with *st set, 0 on timeout,
 * -1 if pid is not (or no longer) our child. */
static inline int wait_exit(pid_t pid, int *st, long ms) {
    for (long t = 0;; t += 5) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno != EINTR) return -1;
        if (t >= ms) return 0;
        ctest_sleep_ms(5);
    }
}

static inline void describe_status(char *out, size_t cap, int st) {
    if (WIFSIGNALED(st))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st))
        snprintf(out, cap, "exited with %d", WEXITSTATUS(st));
    else
        snprintf(out, cap, "status 0x%x", st);
}

/* Kills every process still parented to us (we are a subreaper, so orphans of
 * our descendants land here too, perhaps a little later) and reaps them all.
 * Returns how many live processes it had to kill: 0 when nothing was left. */
static inline int kill_leftovers(void) {
    int killed = 0;
    pid_t done[512];
    for (int round = 0; round < 300; round++) {
        int seen = 0;
        DIR *d = opendir("/proc");
        if (!d) break;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!isdigit((unsigned char)e->d_name[0])) continue;
            pid_t pid = (pid_t)atoi(e->d_name);
            char state;
            pid_t ppid;
            if (ctest_proc_stat(pid, &state, &ppid) != 0 || ppid != getpid()) continue;
            seen++;
            if (state == 'Z') continue;
            kill(pid, SIGKILL);
            int known = 0;
            for (int i = 0; i < killed && i < 512; i++) known |= done[i] == pid;
            if (!known) {
                fprintf(stderr, "leftover process %d (state %c) killed\n", (int)pid, state);
                if (killed < 512) done[killed] = pid;
                killed++;
            }
        }
        closedir(d);
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (seen == 0) break;
        ctest_sleep_ms(10);
    }
    return killed;
}


/* Reaps `pid` within `ms` ms; on timeout kills and reaps it and returns -1. */
static inline pid_t reap_within(pid_t pid, int *status, long ms) {
    for (long waited = 0;; waited += 5) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r != 0) return r;
        if (waited >= ms) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return -1;
        }
        ctest_sleep_ms(5);
    }
}

/* Kills and reaps every child of this process; returns how many there were. */
static inline int kill_children(void) {
    int n = 0;
    DIR *d = opendir("/proc");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char state;
            pid_t ppid;
            pid_t pid = atoi(e->d_name);
            if (pid > 0 && ctest_proc_stat(pid, &state, &ppid) == 0 && ppid == getpid()) {
                kill(pid, SIGKILL);
                n++;
            }
        }
        closedir(d);
    }
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
    }
    return n;
}

/* Reads a whole (small) file; returns its length or -1. */
static inline ssize_t read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && ((r = read(fd, buf + n, cap - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0) n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Reads `fd` until EOF or `cap - 1` bytes, waiting at most 10 s for each
 * chunk; NUL-terminates. Returns the length, or -1 on a timeout or error. */
static inline ssize_t read_until_eof(int fd, char *buf, size_t cap) {
    size_t n = 0;
    while (n < cap - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 10000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

#endif
