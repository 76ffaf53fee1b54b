/*
 * What libzreap_preload.so (zreap_preload.c) and libzreap_preload_core.so
 * (preload/src/lib.rs, `CoreTable`) agree on. The two are built together;
 * the version guards against a core from another build next to the stub.
 */
#ifndef ZREAP_PRELOAD_CORE_H
#define ZREAP_PRELOAD_CORE_H

#include <signal.h>
#include <stdint.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define ZREAP_PRELOAD_CORE_VERSION 6u
#define ZREAP_PRELOAD_CORE_START "zreap_preload_core_start"

/* The `mode` argument of the start function. */
#define ZREAP_PRELOAD_FROM_ENVIRONMENT (-1) /* the core reads the ZREAP_* settings */
#define ZREAP_PRELOAD_HANDLER 1             /* only ZREAP_REAP=handler (or nothing) was set */
#define ZREAP_PRELOAD_ALL 2                 /* only ZREAP_REAP=all was set */

/* The core's interposers, in this order. */
struct zreap_preload_core {
    unsigned version;
    int (*sigaction)(int, const struct sigaction *, struct sigaction *);
    sighandler_t (*signal)(int, sighandler_t);
    sighandler_t (*bsd_signal)(int, sighandler_t);
    sighandler_t (*sysv_signal)(int, sighandler_t);
    sighandler_t (*sigset)(int, sighandler_t);
    pid_t (*wait)(int *);
    pid_t (*waitpid)(pid_t, int *, int);
    pid_t (*wait3)(int *, int, struct rusage *);
    pid_t (*wait4)(pid_t, int *, int, struct rusage *);
    int (*waitid)(idtype_t, id_t, siginfo_t *, int);
    FILE *(*popen)(const char *, const char *);
    int (*pclose)(FILE *);
    int (*system)(const char *);
    int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                       char *const[], char *const[]);
    int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
    /* In the parent, after a child was made without fork's handlers (vfork,
     * clone, _Fork): what the core's fork handler does after fork(). */
    void (*child_made)(void);
    /* zreap's library manages the process's children from now on: the shim
     * reaps none of them (zreap_preload_stand_down). */
    void (*stand_down)(void);
    /* pidfd_open(2) and pidfd_send_signal(2): a child the shim reaped answers
     * as the zombie it would have been. */
    int (*pidfd_open)(pid_t, unsigned int);
    int (*pidfd_send_signal)(int, int, siginfo_t *, unsigned int);
    /* glibc's clone made child `pid` with CLONE_PIDFD, whose pidfd is `pidfd`. */
    void (*pidfd_made)(int pidfd, pid_t pid);
    /* Read before the stub makes a child (fork, forkpty, vfork, clone, _Fork)
     * and given back with the child's pid: exits the shim stored of older
     * processes that had the pid answer no wait, pidfd_open or kill for it. */
    uint64_t (*reap_clock)(void);
    void (*child_pid_given)(pid_t pid, uint64_t clock);
    /* kill(2): a pid whose exit the shim stored accepts a signal (returns 0),
     * as its zombie would have. */
    int (*kill)(pid_t, int);
};

/* Starts the core (what a constructor would do) and returns its table, or
 * NULL if it failed. `next` looks up a libc function after the stub. */
typedef const struct zreap_preload_core *(*zreap_preload_core_start_fn)(void *(*next)(const char *name), int mode);

#endif
