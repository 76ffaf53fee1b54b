/* Minimal harness for zreap's C tests. Each test program is its own process:
 * it prints one line per failed check, exits 1 if any check failed, and is
 * killed by SIGALRM if it runs longer than CTEST_DEADLINE seconds. */
#ifndef ZREAP_CTEST_H
#define ZREAP_CTEST_H

#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zreap.h"

#ifndef CTEST_DEADLINE
#define CTEST_DEADLINE 120
#endif

static int ctest_failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d: %s)\n", __FILE__, \
                    __LINE__, #cond, errno, strerror(errno));                    \
            ctest_failures++;                                                    \
        }                                                                        \
    } while (0)

/* Checks that `call` returned -1 with errno `err`. */
#define CHECK_ERR(call, err)                                                     \
    do {                                                                         \
        errno = 0;                                                               \
        long ctest_rc_ = (long)(call);                                           \
        int ctest_errno_ = errno;                                                \
        if (ctest_rc_ != -1 || ctest_errno_ != (err)) {                          \
            fprintf(stderr, "%s:%d: %s returned %ld errno %d (%s), want -1 %s\n", \
                    __FILE__, __LINE__, #call, ctest_rc_, ctest_errno_,          \
                    strerror(ctest_errno_), #err);                               \
            ctest_failures++;                                                    \
        }                                                                        \
    } while (0)

/* Call first in main(): arms the deadline. */
/* The FLAGS argument of a program run as "NAME FLAGS" (zreap_install's
 * flags, -1 for no zreap_install); exits 2 with a usage line otherwise. */
static inline int ctest_flags_arg(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FLAGS\n", argv[0]);
        exit(2);
    }
    return atoi(argv[1]);
}

static inline void ctest_start(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(CTEST_DEADLINE);
}

/* Call last in main(): returns the exit code. */
static inline int ctest_finish(const char *name) {
    if (ctest_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, ctest_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

/* Reads state and ppid of `pid` from /proc (parsing after the last ')').
 * Returns 0 on success, -1 if the process is gone. */
static inline int ctest_proc_stat(pid_t pid, char *state, pid_t *ppid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close = strrchr(buf, ')');
    if (!close) return -1;
    int pp;
    if (sscanf(close + 2, "%c %d", state, &pp) != 2) return -1;
    *ppid = pp;
    return 0;
}

/* 1 if `fd` turns readable within `timeout_ms` (poll, EINTR retried). */
static inline int ctest_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, timeout_ms)) == -1 && errno == EINTR) {
    }
    return r == 1 && (p.revents & POLLIN);
}

/* 1 if `pid` is a zombie (exited, not yet reaped), else 0. */
static inline int ctest_is_zombie(pid_t pid) {
    char state = 0;
    pid_t ppid;
    return ctest_proc_stat(pid, &state, &ppid) == 0 && state == 'Z';
}

/* Counts processes whose parent is `parent`; with `only_zombies`, those in state Z. */
static inline int ctest_count_children(pid_t parent, int only_zombies) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char state;
        pid_t ppid;
        if (ctest_proc_stat(atoi(e->d_name), &state, &ppid) == 0 && ppid == parent &&
            (!only_zombies || state == 'Z'))
            count++;
    }
    closedir(d);
    return count;
}

static inline int ctest_zombies(void) { return ctest_count_children(getpid(), 1); }
static inline int ctest_children(void) { return ctest_count_children(getpid(), 0); }

/* Number of open fds of this process. */
static inline int ctest_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int count = -1; /* the DIR's own fd */
    while (readdir(d) != NULL) count++;
    closedir(d);
    return count - 2; /* "." and ".." */
}

static inline void ctest_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Waits up to `ms` until child `pid` has exited: a zombie, or reaped by
 * someone else (gone). 1 if so. */
static inline int ctest_exited_within(pid_t pid, long ms) {
    char state = 0;
    pid_t ppid;
    for (long waited = 0; waited < ms; waited += 5) {
        if (ctest_proc_stat(pid, &state, &ppid) != 0 || state == 'Z') return 1;
        ctest_sleep_ms(5);
    }
    return 0;
}

/* Waits up to `ms` milliseconds for `cond` to hold, re-checking every 5 ms. */
#define WAIT_UNTIL(cond, ms)                                             \
    do {                                                                 \
        for (long ctest_w_ = 0; !(cond) && ctest_w_ < (ms); ctest_w_ += 5) \
            ctest_sleep_ms(5);                                           \
    } while (0)

/* `rounds` rounds of zfork() + blocking zwait(pid): child i exits with
 * i % codes, and the wait must return that status. Returns 1 when every
 * round did; stops at the first that did not. */
static inline int ctest_zfork_zwait_rounds(int rounds, int codes) {
    for (int i = 0; i < rounds; i++) {
        int st = -1;
        pid_t pid = zfork(NULL);
        if (pid == 0) _exit(i % codes);
        if (pid < 0 || zwait(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != i % codes) return 0;
    }
    return 1;
}

/* A zfork() child that exits `code` once gate[1] is closed (EOF on its read end);
 * makes the pipe and closes gate[0] here. Lets a test set up how it takes the
 * child before the child can exit. */
static inline pid_t ctest_zfork_gated(int gate[2], int code) {
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    pid_t pid = zfork(NULL);
    if (pid == 0) {
        char byte;
        close(gate[1]);
        while (read(gate[0], &byte, 1) == -1 && errno == EINTR) {
        }
        _exit(code);
    }
    CHECK(pid > 0);
    close(gate[0]);
    return pid;
}

/* The number of threads of this process (/proc/self/task); exits 2 if it
 * cannot be read. */
static inline int ctest_tasks(void) {
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

/* One more than the largest pid (/proc/sys/kernel/pid_max + 1; 4194305 if
 * unreadable): the size of an array indexed by pid. */
static inline long ctest_pid_limit(void) {
    long pid_max = 4194304;
    FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
    if (f) {
        if (fscanf(f, "%ld", &pid_max) != 1) pid_max = 4194304;
        fclose(f);
    }
    return pid_max + 1;
}

/* The one thread of this process that is not the main thread (zreap's
 * keeper in a program with no threads of its own); -1 if there is none. */
static inline pid_t ctest_other_thread(void) {
    DIR *dir = opendir("/proc/self/task");
    if (dir == NULL) return -1;
    pid_t found = -1;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        pid_t tid = (pid_t)atoi(entry->d_name);
        if (tid > 0 && tid != getpid()) found = tid;
    }
    closedir(dir);
    return found;
}

/* A thread's voluntary context switches (how often it went to sleep); -1 if
 * unreadable. */
static inline long ctest_thread_sleeps(pid_t tid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *status = fopen(path, "r");
    if (status == NULL) return -1;
    long n = -1;
    while (fgets(line, sizeof line, status) != NULL)
        if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) n = atol(line + 24);
    fclose(status);
    return n;
}

/* Sets errno to a value no call returns and spins for `ms` milliseconds
 * watching it: 1 if it never changed (another thread of the process, such
 * as a library's, must not write this thread's errno), 0 if it did. */
static inline int ctest_errno_steady_ms(long ms) {
    errno = 12345;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        if (errno != 12345) {
            return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L < ms);
    return 1;
}

/* Prints "ok: WHAT" or "FAILED: WHAT" on stdout, for tests whose runner reads
 * the lines, and counts a failure. */
static inline void ctest_say(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    fflush(stdout);
    ctest_failures += !ok;
}

/* Forks a child that exits at once with `code`; exits 2 if fork fails. */
static inline pid_t ctest_child_exiting(int code) {
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

#if defined(__x86_64__)
#define CTEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CTEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* From now on, here and in every child, system call `nr` fails with EINVAL
 * when its argument number `arg` is `value`, as on a kernel without that
 * feature; every other call is allowed (a seccomp filter). Returns 1 once the
 * filter is in place, 0 where it cannot be (errno says why). */
static inline int ctest_refuse_call(int nr, int arg, unsigned long value) {
#ifdef CTEST_AUDIT_ARCH
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CTEST_AUDIT_ARCH, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (unsigned)(offsetof(struct seccomp_data, args) + 8 * arg)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)value, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof code / sizeof code[0], code};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
#else
    (void)nr;
    (void)arg;
    (void)value;
    errno = ENOSYS;
    return 0;
#endif
}

#endif
