/*
 * libzreap_preload.so, the object LD_PRELOAD loads into every process.
 *
 * It holds only the interposed libc functions and forwards each call: to
 * libc while the shim has nothing to do, or to the shim itself,
 * libzreap_preload_core.so (Rust, in the same directory), which it loads on
 * the first call that needs it:
 *
 *   - SIGCHLD given a handler (sigaction or the signal() family);
 *   - popen and system, which the core re-implements (glibc's versions wait
 *     with an internal waitpid, which the shim cannot see: a stream opened
 *     before the core loaded would lose its status to the shim);
 *   - with ZREAP_REAP=all, the first child made (fork, forkpty, posix_spawn,
 *     vfork, clone, _Fork) or the first signal handler installed, whichever
 *     comes first, or at start-up if the process already has children;
 *   - at start-up when ZREAP_PDEATHSIG, ZREAP_SUBREAPER or ZREAP_LOG is set,
 *     or ZREAP_REAP has a value other than handler, all or off.
 *
 * Until then nothing the shim does differs from libc's own behaviour, so a
 * process that never touches SIGCHLD (most of what a shell or make runs)
 * pays only for loading this small object: the core's Rust runtime (its
 * relocations, symbol versions and constructor) cost it 25 k instructions
 * per exec.
 *
 * The core is loaded from ordinary context: a handler of another signal may
 * install a SIGCHLD handler or make a child (_Fork is async-signal-safe),
 * and dlopen is not, so the first handler the program installs looks up the
 * libc functions a handler may call through the stub and, under
 * ZREAP_REAP=all, loads the core.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pty.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000 /* Linux 5.2; glibc 2.31 names it */
#endif

#define EXPORT __attribute__((visibility("default")))

/* ZREAP_REAP: what the core is told when it is loaded lazily. */
enum stub_mode { STUB_HANDLER = ZREAP_PRELOAD_HANDLER, STUB_ALL = ZREAP_PRELOAD_ALL, STUB_OFF = -2 };

static int mode = STUB_HANDLER;
/* Set by zreap_preload_stand_down: zreap's library manages the children. */
static int stood_down;
/* The core's entry points once loaded; NULL before (or if it cannot load). */
static const struct zreap_preload_core *core;
/* How many times the core may be tried: a load that fails for want of a file
 * descriptor (the program at its RLIMIT_NOFILE) is tried again at the next
 * call that needs the core, each attempt through a once of its own. */
#define LOAD_ATTEMPTS 8
static pthread_once_t core_once[LOAD_ATTEMPTS] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                                 PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                                 PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
/* The attempt the next load is, an index into core_once. */
static unsigned load_attempt;
/* Set when a load failed for good: later calls go straight to libc. */
static int load_failed;
/* The working directory at start-up, when LD_PRELOAD names this object by a
 * relative path (the program may change directory before the core loads). */
static char start_dir[PATH_MAX];

extern char **environ;

/* ------------------------------------------------------------ libc's own */

/* A libc function, looked up after this object (RTLD_NEXT) on first use. */
struct real {
    const char *name;
    void *addr;
};

#define REAL(var, fname) static struct real var = {fname, NULL}
REAL(real_sigaction, "sigaction");
REAL(real_signal, "signal");
REAL(real_bsd_signal, "bsd_signal");
REAL(real_sysv_signal, "sysv_signal");
REAL(real_sigset, "sigset");
REAL(real_wait, "wait");
REAL(real_waitpid, "waitpid");
REAL(real_wait3, "wait3");
REAL(real_wait4, "wait4");
REAL(real_waitid, "waitid");
REAL(real_popen, "popen");
REAL(real_pclose, "pclose");
REAL(real_system, "system");
REAL(real_fork, "fork");
REAL(real_forkpty, "forkpty");
REAL(real_underscore_fork, "_Fork");
REAL(real_clone, "clone");
REAL(real_posix_spawn, "posix_spawn");
REAL(real_posix_spawnp, "posix_spawnp");
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 36))
#define HAVE_PIDFD_FUNCTIONS 1 /* glibc 2.36 wraps pidfd_open and pidfd_send_signal */
#include <sys/pidfd.h>
REAL(real_pidfd_open, "pidfd_open");
REAL(real_pidfd_send_signal, "pidfd_send_signal");
#endif
REAL(real_syscall, "syscall");
REAL(real_kill, "kill");

static void *lookup(struct real *r) {
    void *addr = __atomic_load_n(&r->addr, __ATOMIC_ACQUIRE);
    if (addr == NULL) {
        addr = dlsym(RTLD_NEXT, r->name);
        __atomic_store_n(&r->addr, addr, __ATOMIC_RELEASE);
    }
    return addr;
}

static const struct zreap_preload_core *need_core(void);
#if defined(__x86_64__)
void *zreap_stub_syscall_next(void);
#endif

/* Looks up, while the program installs a signal handler, the functions a
 * handler may call through the stub: a handler then never runs dlsym, which
 * is not async-signal-safe. Under ZREAP_REAP=all it loads the core too: a
 * handler that makes the process's first child (_Fork, which glibc and POSIX
 * make async-signal-safe, or vfork, fork, clone) would otherwise dlopen it
 * there. The first handler is installed in ordinary context (no handler of
 * the program can run before), so this is too. */
static void resolve_for_handlers(void) {
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        return;
    }
    int saved = errno;
    struct real *used_in_handlers[] = {
        &real_sigaction, &real_wait,           &real_waitpid, &real_wait3,  &real_wait4,
        &real_waitid,    &real_underscore_fork, &real_clone,  &real_syscall, &real_kill,
#ifdef HAVE_PIDFD_FUNCTIONS
        &real_pidfd_send_signal,
#endif
    };
    for (size_t i = 0; i < sizeof used_in_handlers / sizeof used_in_handlers[0]; i++) {
        lookup(used_in_handlers[i]);
    }
    if (mode == STUB_ALL) {
        (void)need_core();
    }
    errno = saved;
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

/* The resolver the core uses for the libc functions it forwards to: the
 * ones after this object in the lookup order. */
static void *next_symbol(const char *name) { return dlsym(RTLD_NEXT, name); }

/* ------------------------------------------------------------ the core */

static void say(const char *a, const char *b, const char *c, const char *d) {
    const char *parts[] = {"zreap_preload: ", a, b, c, d, "; the shim stays out of the way\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        ssize_t unused = write(2, parts[i], strlen(parts[i]));
        (void)unused;
    }
}

/* Threads inside load_core_now (running a load or waiting for one), and
 * the process they belong to (each writes its own pid first): a process that
 * finds the count above 0 and another pid there was forked during a load. */
static int loads_in_flight;
static pid_t loading_pid;

/* getpid(2), made directly: each libc function the stub imports costs every
 * process's start a symbol lookup. Async-signal-safe. */
static pid_t raw_getpid(void) {
#if defined(__x86_64__)
    long rc;
    __asm__ volatile("syscall" : "=a"(rc) : "0"((long)SYS_getpid) : "rcx", "r11", "memory");
    return (pid_t)rc;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_getpid;
    register long x0 __asm__("x0");
    __asm__ volatile("svc 0" : "=r"(x0) : "r"(x8) : "memory");
    return (pid_t)x0;
#else
    return getpid();
#endif
}

/* libc's syscall(), looked up, for the system calls the stub makes while it
 * loads the core: each libc function the stub imports costs every process's
 * start a symbol lookup. */
typedef long (*syscall_fn)(long, ...);
static syscall_fn libc_syscall(void) { return (syscall_fn)lookup(&real_syscall); }

/* Would opening `path` fail for want of a file descriptor or memory, as
 * for a program at its RLIMIT_NOFILE? */
static int no_fd_for(const char *path) {
    syscall_fn sys = libc_syscall();
    long fd = sys(SYS_openat, (long)AT_FDCWD, path, (long)(O_RDONLY | O_CLOEXEC));
    if (fd >= 0) {
        sys(SYS_close, fd);
        return 0;
    }
    return errno == EMFILE || errno == ENFILE || errno == ENOMEM;
}

/* Loads the core: its path is this object's with the file name replaced.
 * Returns 1 when it could not for want of a file descriptor and `may_retry`:
 * the next call that needs the core tries again. On other failures it says
 * why on stderr and the shim stays off. */
static int load_core(int may_retry) {
    Dl_info self;
    if (dladdr((void *)load_core, &self) == 0 || self.dli_fname == NULL) {
        say("cannot find its own path", "", "", "");
        return 0;
    }
    static const char core_name[] = "libzreap_preload_core.so";
    char path[PATH_MAX];
    const char *slash = strrchr(self.dli_fname, '/');
    size_t dir_len = slash ? (size_t)(slash - self.dli_fname) + 1 : 0;
    size_t prefix_len = self.dli_fname[0] == '/' ? 0 : strlen(start_dir);
    if (prefix_len + 1 + dir_len + sizeof core_name > sizeof path) {
        say("path too long: ", self.dli_fname, "", "");
        return 0;
    }
    size_t at = 0;
    if (prefix_len > 0) {
        memcpy(path, start_dir, prefix_len);
        path[prefix_len] = '/';
        at = prefix_len + 1;
    }
    memcpy(path + at, self.dli_fname, dir_len);
    memcpy(path + at + dir_len, core_name, sizeof core_name);
    /* RTLD_NOW: the core's SIGCHLD handler and its bare reaper thread must
     * never enter the dynamic linker's lazy resolver (it is linked so, too). */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        if (may_retry && no_fd_for(path)) {
            return 1;
        }
        say("cannot load ", path, ": ", why ? why : "unknown error");
        return 0;
    }
    zreap_preload_core_start_fn start = (zreap_preload_core_start_fn)dlsym(handle, ZREAP_PRELOAD_CORE_START);
    const struct zreap_preload_core *loaded = start ? start(next_symbol, mode) : NULL;
    if (loaded == NULL || loaded->version != ZREAP_PRELOAD_CORE_VERSION) {
        say(path, " is not the core this shim was built with", "", "");
        return 0;
    }
    /* Once the core is loaded, sigaction and the signal() family go to it and
     * resolve_for_handlers is never called: what a handler may still call
     * through the stub itself is looked up here, in ordinary context (a
     * handler's first syscall() would otherwise run dlsym). */
    lookup(&real_underscore_fork);
    lookup(&real_clone);
#if defined(__x86_64__)
    (void)zreap_stub_syscall_next();
#endif
    /* zreap_preload_stand_down, if it comes now, waits for this load to end
     * and then stands this core down itself. */
    __atomic_store_n(&core, loaded, __ATOMIC_RELEASE);
    return 0;
}

/* Loads the core, as attempt load_attempt (through its once). Attempts run
 * one after the other: the next one's once is used only once this one has
 * moved load_attempt on. */
static void load_core_once(void) {
    if (__atomic_load_n(&stood_down, __ATOMIC_SEQ_CST)) {
        return; /* zreap_preload_stand_down came first: the core is never loaded */
    }
    unsigned attempt = __atomic_load_n(&load_attempt, __ATOMIC_SEQ_CST);
    if (load_core(attempt + 1 < LOAD_ATTEMPTS)) {
        __atomic_store_n(&load_attempt, attempt + 1, __ATOMIC_SEQ_CST);
    } else if (__atomic_load_n(&core, __ATOMIC_SEQ_CST) == NULL) {
        __atomic_store_n(&load_failed, 1, __ATOMIC_SEQ_CST);
    }
}

/* Runs the current attempt to load the core, or waits for it if another
 * thread runs it; returns at once if it is over.
 *
 * Every signal is blocked on the thread meanwhile (all but glibc's own two,
 * 32 and 33, as pthread_sigmask would: setuid() in another thread waits
 * until every thread has taken SIGSETXID). A handler of the program's that
 * forked on a thread in the middle of the dynamic linker's work would leave
 * its child to go on with it, reading the core's file through the parent's
 * file offset; one that forked on a thread about to run the load would wait
 * in fork() for that very load. */
static void load_core_now(void) {
    syscall_fn sys = libc_syscall();
    uint64_t all = ~(uint64_t)0 & ~((uint64_t)3 << 31), saved = 0;
    sys(SYS_rt_sigprocmask, (long)SIG_SETMASK, &all, &saved, (long)sizeof all);
    __atomic_store_n(&loading_pid, raw_getpid(), __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&loads_in_flight, 1, __ATOMIC_SEQ_CST);
    pthread_once(&core_once[__atomic_load_n(&load_attempt, __ATOMIC_SEQ_CST)], load_core_once);
    __atomic_sub_fetch(&loads_in_flight, 1, __ATOMIC_SEQ_CST);
    sys(SYS_rt_sigprocmask, (long)SIG_SETMASK, &saved, NULL, (long)sizeof saved);
}

/* Was this process made by a fork, _Fork or clone while its parent (or an
 * ancestor) was loading the core? Its copy of the dynamic linker's state may
 * have the core half loaded (a dlopen again crashed in it), and its copy of
 * the once be in progress: pthread_once would load again (fork restarts it)
 * or wait for ever (_Fork and clone do not). The shim stays off in it. A
 * system call only while a load is in flight or cut. */
static int load_cut_by_fork(void) {
    return __atomic_load_n(&loads_in_flight, __ATOMIC_SEQ_CST) != 0 &&
           __atomic_load_n(&loading_pid, __ATOMIC_SEQ_CST) != raw_getpid();
}

/* The core, loading it first if it is not yet (never once the shim stood
 * down: see zreap_preload_stand_down). errno is kept. */
static const struct zreap_preload_core *need_core(void) {
    const struct zreap_preload_core *c = __atomic_load_n(&core, __ATOMIC_ACQUIRE);
    if (c != NULL || mode == STUB_OFF || __atomic_load_n(&stood_down, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&load_failed, __ATOMIC_SEQ_CST)) {
        return c;
    }
    int saved = errno;
    if (load_cut_by_fork()) {
        static int said;
        if (!said) {
            said = 1;
            say("forked while its parent loaded the core", "", "", "");
        }
        errno = saved;
        return NULL;
    }
    load_core_now();
    errno = saved;
    return __atomic_load_n(&core, __ATOMIC_ACQUIRE);
}

/* The core if it is loaded. */
static const struct zreap_preload_core *loaded_core(void) { return __atomic_load_n(&core, __ATOMIC_ACQUIRE); }

/* The core for fork and posix_spawn: in `all` mode the core must see every
 * child, so it is loaded now. */
static const struct zreap_preload_core *core_for_child(void) {
    return mode == STUB_ALL ? need_core() : loaded_core();
}

/* The core for fork() and forkpty(): as core_for_child, and a load another
 * thread is in the middle of is waited for (no thread forks inside its own
 * load: see load_core_now). A child forked halfway through it would start
 * with the core half set up, and the shim off (load_cut_by_fork). */
static const struct zreap_preload_core *core_for_fork(void) {
    const struct zreap_preload_core *c = core_for_child();
    if (c == NULL && __atomic_load_n(&loads_in_flight, __ATOMIC_SEQ_CST) != 0) {
        c = need_core();
    }
    return c;
}

/* Is this disposition a handler function? For SIGCHLD only a handler needs
 * the core: the default, SIG_IGN and SA_NOCLDWAIT are the kernel's to serve,
 * and before the core loads the process has no child the shim must reap. */
static int is_handler(sighandler_t handler) {
    return handler != SIG_DFL && handler != SIG_IGN && handler != SIG_ERR && handler != SIG_HOLD;
}

/* ------------------------------------------------------------ start-up */

/* Does `entry` start with `name` followed by '='? Returns the value. The
 * constructor calls no libc function: binding one costs ~1 k instructions. */
static const char *value_of(const char *entry, const char *name) {
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        if (entry[i] != name[i]) {
            return NULL;
        }
    }
    return entry[i] == '=' ? entry + i + 1 : NULL;
}

static int equals(const char *a, const char *b) {
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* Does the LD_PRELOAD list name any object by a relative path? */
static int has_relative_entry(const char *list) {
    int at_start = 1;
    for (const char *p = list; *p != '\0'; p++) {
        if (*p == ' ' || *p == ':') {
            at_start = 1;
        } else if (at_start) {
            if (*p != '/') {
                return 1;
            }
            at_start = 0;
        }
    }
    return 0;
}

/* Has the process any child? A raw waitid (WNOWAIT: nothing is reaped):
 * the libc wrapper would be bound at its first call, ~1 k instructions. */
static int has_children(void) {
    siginfo_t info;
    long rc;
#if defined(__x86_64__)
    register long options __asm__("r10") = WEXITED | WNOHANG | WNOWAIT;
    register long usage __asm__("r8") = 0;
    __asm__ volatile("syscall"
                     : "=a"(rc)
                     : "0"((long)SYS_waitid), "D"((long)P_ALL), "S"(0L), "d"(&info), "r"(options), "r"(usage)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_waitid;
    register long x0 __asm__("x0") = P_ALL;
    register long x1 __asm__("x1") = 0;
    register long x2 __asm__("x2") = (long)&info;
    register long x3 __asm__("x3") = WEXITED | WNOHANG | WNOWAIT;
    register long x4 __asm__("x4") = 0;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
    rc = x0;
#else
    int saved = errno;
    rc = syscall(SYS_waitid, P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT, NULL);
    errno = saved;
#endif
    /* 0: children (exited or not); -ECHILD (or -1): none. */
    return rc == 0;
}

/* Reads the settings (one pass over the environment) and loads the core now
 * where start-up needs it. */
__attribute__((constructor)) static void start(void) {
    int load_now = 0;
    int reap_seen = 0; /* the first ZREAP_REAP wins, as for getenv */
    for (char **entry = environ; entry != NULL && *entry != NULL; entry++) {
        const char *e = *entry;
        const char *value;
        if (e[0] == 'L' && (value = value_of(e, "LD_PRELOAD")) != NULL) {
            if (has_relative_entry(value) && getcwd(start_dir, sizeof start_dir) == NULL) {
                start_dir[0] = '\0';
            }
        } else if (e[0] != 'Z' || e[1] != 'R' || e[2] != 'E' || e[3] != 'A' || e[4] != 'P' || e[5] != '_') {
            continue;
        } else if ((value = value_of(e, "ZREAP_REAP")) != NULL) {
            if (reap_seen++) {
                continue;
            }
            if (equals(value, "handler")) {
                mode = STUB_HANDLER;
            } else if (equals(value, "all")) {
                mode = STUB_ALL;
            } else if (equals(value, "off")) {
                mode = STUB_OFF;
            } else {
                load_now = 1;
            }
        } else if (value_of(e, "ZREAP_PDEATHSIG") || value_of(e, "ZREAP_SUBREAPER") || value_of(e, "ZREAP_LOG")) {
            load_now = 1;
        }
    }
    if (load_now) {
        /* The core reads the environment itself and reports what is wrong. */
        mode = ZREAP_PRELOAD_FROM_ENVIRONMENT;
        need_core();
        return;
    }
    if (mode == STUB_ALL) {
        /* Children inherited across exec are the shim's to reap too. */
        if (has_children()) {
            need_core();
        }
    }
}

/* ------------------------------------------------------------ the exports
 *
 * sigaction and the wait family are async-signal-safe once the program has
 * installed its first handler (resolve_for_handlers): then they only read
 * atomics and call through resolved pointers. */

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*signal_fn)(int, sighandler_t);
typedef pid_t (*wait_fn)(int *);
typedef pid_t (*waitpid_fn)(pid_t, int *, int);
typedef pid_t (*wait3_fn)(int *, int, struct rusage *);
typedef pid_t (*wait4_fn)(pid_t, int *, int, struct rusage *);
typedef int (*waitid_fn)(idtype_t, id_t, siginfo_t *, int);
typedef FILE *(*popen_fn)(const char *, const char *);
typedef int (*pclose_fn)(FILE *);
typedef int (*system_fn)(const char *);
typedef pid_t (*fork_fn)(void);
typedef int (*posix_spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                              char *const[], char *const[]);

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    const struct zreap_preload_core *c = loaded_core();
    if (c == NULL && act != NULL && is_handler(act->sa_handler)) {
        resolve_for_handlers(); /* loads the core under ZREAP_REAP=all */
        c = loaded_core();
        if (c == NULL && sig == SIGCHLD && (act->sa_flags & SA_NOCLDWAIT) == 0) {
            c = need_core();
        }
    }
    return c ? c->sigaction(sig, act, old) : ((sigaction_fn)lookup(&real_sigaction))(sig, act, old);
}

/* The signal() family: the core for a SIGCHLD handler. */
static sighandler_t signal_family(struct real *real, sighandler_t (*in_core)(const struct zreap_preload_core *, int,
                                                                             sighandler_t),
                                  int sig, sighandler_t handler) {
    const struct zreap_preload_core *c = loaded_core();
    if (c == NULL && is_handler(handler)) {
        resolve_for_handlers(); /* loads the core under ZREAP_REAP=all */
        c = loaded_core();
        if (c == NULL && sig == SIGCHLD) {
            c = need_core();
        }
    }
    return c ? in_core(c, sig, handler) : ((signal_fn)lookup(real))(sig, handler);
}

static sighandler_t core_signal(const struct zreap_preload_core *c, int sig, sighandler_t h) {
    return c->signal(sig, h);
}
static sighandler_t core_bsd_signal(const struct zreap_preload_core *c, int sig, sighandler_t h) {
    return c->bsd_signal(sig, h);
}
static sighandler_t core_sysv_signal(const struct zreap_preload_core *c, int sig, sighandler_t h) {
    return c->sysv_signal(sig, h);
}
static sighandler_t core_sigset(const struct zreap_preload_core *c, int sig, sighandler_t h) {
    return c->sigset(sig, h);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler) {
    return signal_family(&real_signal, core_signal, sig, handler);
}
EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler) {
    return signal_family(&real_bsd_signal, core_bsd_signal, sig, handler);
}
EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler) {
    return signal_family(&real_sysv_signal, core_sysv_signal, sig, handler);
}
EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler) {
    return signal_family(&real_sysv_signal, core_sysv_signal, sig, handler);
}
EXPORT sighandler_t sigset(int sig, sighandler_t handler) {
    return signal_family(&real_sigset, core_sigset, sig, handler);
}

/* A wait that went to libc because no core was loaded, and found no child:
 * if another thread loaded the core meanwhile, the core's SIGCHLD handler may
 * have reaped the child into its store while this wait sat in the kernel.
 * Returns the core, which then answers the wait; NULL otherwise. */
static const struct zreap_preload_core *core_loaded_during_wait(long rc) {
    return rc == -1 && errno == ECHILD ? loaded_core() : NULL;
}

EXPORT pid_t wait(int *status) {
    const struct zreap_preload_core *c = loaded_core();
    if (c == NULL) {
        int saved = errno;
        pid_t got = ((wait_fn)lookup(&real_wait))(status);
        if ((c = core_loaded_during_wait(got)) == NULL) {
            return got;
        }
        errno = saved; /* the core puts it back on success */
    }
    return c->wait(status);
}
EXPORT pid_t waitpid(pid_t pid, int *status, int options) {
    const struct zreap_preload_core *c = loaded_core();
    if (c == NULL) {
        int saved = errno;
        pid_t got = ((waitpid_fn)lookup(&real_waitpid))(pid, status, options);
        if ((c = core_loaded_during_wait(got)) == NULL) {
            return got;
        }
        errno = saved; /* the core puts it back on success */
    }
    return c->waitpid(pid, status, options);
}
EXPORT pid_t wait3(int *status, int options, struct rusage *usage) {
    const struct zreap_preload_core *c = loaded_core();
    if (c == NULL) {
        int saved = errno;
        pid_t got = ((wait3_fn)lookup(&real_wait3))(status, options, usage);
        if ((c = core_loaded_during_wait(got)) == NULL) {
            return got;
        }
        errno = saved; /* the core puts it back on success */
    }
    return c->wait3(status, options, usage);
}
EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage) {
    const struct zreap_preload_core *c = loaded_core();
    if (c == NULL) {
        int saved = errno;
        pid_t got = ((wait4_fn)lookup(&real_wait4))(pid, status, options, usage);
        if ((c = core_loaded_during_wait(got)) == NULL) {
            return got;
        }
        errno = saved; /* the core puts it back on success */
    }
    return c->wait4(pid, status, options, usage);
}
EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options) {
    const struct zreap_preload_core *c = loaded_core();
    if (c == NULL) {
        int saved = errno;
        int rc = ((waitid_fn)lookup(&real_waitid))(idtype, id, info, options);
        if ((c = core_loaded_during_wait(rc)) == NULL) {
            return rc;
        }
        errno = saved; /* the core puts it back on success */
    }
    return c->waitid(idtype, id, info, options);
}

EXPORT FILE *popen(const char *command, const char *type) {
    const struct zreap_preload_core *c = need_core();
    return c ? c->popen(command, type) : ((popen_fn)lookup(&real_popen))(command, type);
}
EXPORT int pclose(FILE *stream) {
    const struct zreap_preload_core *c = loaded_core();
    return c ? c->pclose(stream) : ((pclose_fn)lookup(&real_pclose))(stream);
}
EXPORT int system(const char *command) {
    const struct zreap_preload_core *c = need_core();
    return c ? c->system(command) : ((system_fn)lookup(&real_system))(command);
}
/* The reap clock before a child is made: see child_made_now. 0 while no
 * core is loaded (it has stored no exit then). */
static uint64_t clock_before_child(const struct zreap_preload_core *c) { return c ? c->reap_clock() : 0; }

/* libc's fork itself, once the core is loaded where it must see every child:
 * the core learns of each child from its fork handler in the parent, and the
 * child runs no shim code on its way to exec. The parent then tells the core
 * the child's pid (child_pid_given). */
EXPORT pid_t fork(void) {
    const struct zreap_preload_core *c = core_for_fork();
    uint64_t clock = clock_before_child(c);
    pid_t pid = ((fork_fn)lookup(&real_fork))();
    if (pid > 0 && c != NULL) {
        c->child_pid_given(pid, clock);
    }
    return pid;
}
/* forkpty(3) forks inside libc, through no interposer: the core is loaded
 * first, for the same fork handler. */
EXPORT pid_t forkpty(int *master, char *name, const struct termios *termp, const struct winsize *winp) {
    const struct zreap_preload_core *c = core_for_fork();
    uint64_t clock = clock_before_child(c);
    typedef pid_t (*forkpty_fn)(int *, char *, const struct termios *, const struct winsize *);
    pid_t pid = ((forkpty_fn)lookup(&real_forkpty))(master, name, termp, winp);
    if (pid > 0 && c != NULL) {
        c->child_pid_given(pid, clock);
    }
    return pid;
}
EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attrs, char *const argv[], char *const envp[]) {
    const struct zreap_preload_core *c = core_for_child();
    return c ? c->posix_spawn(pid, path, actions, attrs, argv, envp)
             : ((posix_spawn_fn)lookup(&real_posix_spawn))(pid, path, actions, attrs, argv, envp);
}
EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attrs, char *const argv[], char *const envp[]) {
    const struct zreap_preload_core *c = core_for_child();
    return c ? c->posix_spawnp(pid, file, actions, attrs, argv, envp)
             : ((posix_spawn_fn)lookup(&real_posix_spawnp))(pid, file, actions, attrs, argv, envp);
}

typedef int (*kill_fn)(pid_t, int);
/* kill(2): the core keeps a signal for a child whose exit it stored from the
 * process that may have its pid now (see reap_clock in core.h). */
EXPORT int kill(pid_t pid, int sig) {
    const struct zreap_preload_core *c = loaded_core();
    return c ? c->kill(pid, sig) : ((kill_fn)lookup(&real_kill))(pid, sig);
}

/* zreap's library (libzreap, or the Rust crate) calls this, found with
 * dlsym, at its first use in the process, before it installs its SIGCHLD
 * handler or makes a child: it reaps its own children through pidfds and
 * answers zwait from its own records, so the shim leaves the process's
 * children to it from then on: no core is loaded any more (one being
 * loaded meanwhile stands down at once). errno is kept. */
EXPORT void zreap_preload_stand_down(void) {
    int saved = errno;
    __atomic_store_n(&stood_down, 1, __ATOMIC_SEQ_CST);
    /* A load another thread has begun is waited for (pthread_once returns
     * once it is done), so its core has stood down before the library goes
     * on: until then the core's fork handler, reaper thread and SIGCHLD
     * handler would reap the library's children, and its stand_down would
     * put back the disposition it recorded at start-up over the handler the
     * library installed meanwhile. A load not begun never starts
     * (load_core_once returns at once). No allocation: safe as the first
     * call in a fork child (glibc restarts a once a fork interrupted). */
    if (mode != STUB_OFF && !load_cut_by_fork()) {
        load_core_now();
    }
    const struct zreap_preload_core *c = __atomic_load_n(&core, __ATOMIC_SEQ_CST);
    if (c != NULL) {
        c->stand_down();
    }
    errno = saved;
}

/* ------------------------------------------------ children made without fork's handlers
 *
 * vfork, clone and _Fork run no fork handlers, so the core's handler never
 * hears of their children: in `all` mode a child the program never waits for
 * would stay a zombie. Each tells the core in the parent, once the call has
 * returned there; the child runs no shim code. */

typedef int (*clone_fn)(int (*)(void *), void *, int, void *, ...);

/* The reap clock before vfork, clone or _Fork makes a child, from the core
 * if it is loaded (0 otherwise: it has stored no exit). Called from vfork's
 * assembly below, too. */
__attribute__((used)) uint64_t zreap_stub_child_clock(void) { return clock_before_child(loaded_core()); }

/* In the parent, after vfork, clone or _Fork made child `pid` (the reap clock
 * read before was `clock`): the core (loaded now in `all` mode) starts its
 * reaper thread if it needs one and learns of the child. errno is kept.
 * Called from vfork's assembly below, too. */
__attribute__((used)) void zreap_stub_child_made(pid_t pid, uint64_t clock) {
    int saved = errno;
    const struct zreap_preload_core *c = core_for_child();
    if (c != NULL) {
        c->child_made();
        c->child_pid_given(pid, clock);
    }
    errno = saved;
}

/* Only where libc has _Fork (glibc 2.34): a program that probes for it with
 * a weak reference must not find one that fails. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
EXPORT pid_t _Fork(void) {
    uint64_t clock = zreap_stub_child_clock();
    pid_t pid = ((fork_fn)lookup(&real_underscore_fork))();
    if (pid > 0) {
        zreap_stub_child_made(pid, clock);
    }
    return pid;
}
#endif

/* clone(2)'s glibc wrapper: the child runs `fn` on its own stack and never
 * returns here. The optional arguments are passed on as read (glibc reads
 * each only when `flags` asks for it). A caller that asks for a pidfd waits
 * through it: the core is not told of such a child, so it is not loaded for
 * it, but a loaded core remembers the pidfd, for a waitid(P_PIDFD) after its
 * reaper thread took the child. */
EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...) {
    va_list rest;
    va_start(rest, arg);
    pid_t *parent_tid = va_arg(rest, pid_t *);
    void *tls = va_arg(rest, void *);
    pid_t *child_tid = va_arg(rest, pid_t *);
    va_end(rest);
    uint64_t clock = (flags & CLONE_THREAD) == 0 ? zreap_stub_child_clock() : 0;
    int tid = ((clone_fn)lookup(&real_clone))(fn, stack, flags, arg, parent_tid, tls, child_tid);
    if (tid > 0 && (flags & (CLONE_THREAD | CLONE_PIDFD)) == 0) {
        zreap_stub_child_made(tid, clock);
    } else if (tid > 0 && (flags & CLONE_THREAD) == 0) {
        const struct zreap_preload_core *c = loaded_core();
        if (c != NULL) {
            int saved = errno;
            c->child_pid_given(tid, clock);
            c->pidfd_made(*(int *)parent_tid, tid);
            errno = saved;
        }
    }
    return tid;
}

/* ------------------------------------------------ pidfds of reaped children
 *
 * A child the shim reaped is no zombie any more: the kernel answers
 * pidfd_open and pidfd_send_signal with ESRCH where the zombie would have
 * been found. The core answers as for the zombie (preload/src/pidfd.rs),
 * and remembers which pid each pidfd names, for waitid(P_PIDFD). Before the
 * core is loaded the shim has reaped nothing: the calls go to libc. */

#ifdef HAVE_PIDFD_FUNCTIONS
typedef int (*pidfd_open_fn)(pid_t, unsigned int);
typedef int (*pidfd_send_signal_fn)(int, int, siginfo_t *, unsigned int);

EXPORT int pidfd_open(pid_t pid, unsigned int flags) {
    const struct zreap_preload_core *c = loaded_core();
    return c ? c->pidfd_open(pid, flags) : ((pidfd_open_fn)lookup(&real_pidfd_open))(pid, flags);
}
EXPORT int pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags) {
    const struct zreap_preload_core *c = loaded_core();
    return c ? c->pidfd_send_signal(pidfd, sig, info, flags)
             : ((pidfd_send_signal_fn)lookup(&real_pidfd_send_signal))(pidfd, sig, info, flags);
}
#endif

#if defined(__x86_64__)
/* libc's syscall(), for the assembly below: NULL until looked up. */
__attribute__((used)) void *zreap_stub_syscall_addr;

/* libc's syscall(), found on first use (and by resolve_for_handlers, before a
 * handler can call it). errno is kept. */
__attribute__((used)) void *zreap_stub_syscall_next(void) {
    int saved = errno;
    void *next = lookup(&real_syscall);
    __atomic_store_n(&zreap_stub_syscall_addr, next, __ATOMIC_RELEASE);
    errno = saved;
    return next;
}

/* syscall(SYS_pidfd_open, pid, flags) and syscall(SYS_pidfd_send_signal,
 * ...): CPython's os.pidfd_open, which asyncio's PidfdChildWatcher calls,
 * makes the system call so. */
__attribute__((used)) long zreap_stub_pidfd_syscall(long number, long a, long b, long c, long d) {
    const struct zreap_preload_core *loaded = loaded_core();
    if (loaded != NULL) {
        if (number == SYS_pidfd_open) {
            return loaded->pidfd_open((pid_t)a, (unsigned int)b);
        }
        return loaded->pidfd_send_signal((int)a, (int)b, (siginfo_t *)c, (unsigned int)d);
    }
    return ((long (*)(long, ...))zreap_stub_syscall_next())(number, a, b, c, d);
}

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* syscall(3): the two pidfd calls go to zreap_stub_pidfd_syscall; every other
 * number jumps to libc's syscall with the registers and stack as the caller
 * left them, so that a clone or vfork made through it returns to its caller
 * as from libc's (a C function would share its frame with a vfork child).
 * %al included (a variadic callee reads it: how many vector registers hold
 * arguments): the jump goes through %r11, which no argument uses. */
__asm__(".pushsection .text\n"
        ".globl syscall\n"
        ".type syscall, @function\n"
        ".p2align 4\n"
        "syscall:\n"
        "    .cfi_startproc\n"
        "    endbr64\n"
        "    cmpq $" STRINGIFY(SYS_pidfd_open) ", %rdi\n"
        "    je zreap_stub_pidfd_syscall\n"
        "    cmpq $" STRINGIFY(SYS_pidfd_send_signal) ", %rdi\n"
        "    je zreap_stub_pidfd_syscall\n"
        "    movq zreap_stub_syscall_addr(%rip), %r11\n"
        "    testq %r11, %r11\n"
        "    jz 1f\n"
        "    jmpq *%r11\n"
        "1:  pushq %rax\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %rdi\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %rsi\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %rdx\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %rcx\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %r8\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %r9\n" /* seven pushes: 16-byte aligned for the call */
        "    .cfi_adjust_cfa_offset 8\n"
        "    call zreap_stub_syscall_next\n"
        "    movq %rax, %r11\n"
        "    popq %r9\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %r8\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rcx\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rdx\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rsi\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rdi\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rax\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    jmpq *%r11\n"
        "    .cfi_endproc\n"
        ".size syscall, .-syscall\n"
        ".popsection\n");

/* vfork's failure: sets errno, returns -1. */
__attribute__((used)) pid_t zreap_stub_vfork_failed(int error) {
    errno = error;
    return -1;
}

/* vfork(2), as glibc's: the child shares the parent's memory and stack until
 * it execs or exits, so this function keeps no frame across the call. The
 * return address is popped into %rdi, which the system call keeps; the child
 * jumps back through it without writing the stack; the parent pushes it back
 * and then, with the child gone (exec or exit), calls zreap_stub_child_made
 * with the child's pid and the reap clock read before, kept in %rsi. */
__asm__(".pushsection .text\n"
        ".globl vfork\n"
        ".type vfork, @function\n"
        ".p2align 4\n"
        "vfork:\n"
        "    .cfi_startproc\n"
        "    endbr64\n"
        "    subq $8, %rsp\n" /* 16-byte aligned for the call */
        "    .cfi_adjust_cfa_offset 8\n"
        "    call zreap_stub_child_clock\n"
        "    addq $8, %rsp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    movq %rax, %rsi\n" /* the reap clock, which the system call keeps */
        "    popq %rdi\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_register %rip, %rdi\n"
        "    movl $58, %eax\n" /* SYS_vfork */
        "    syscall\n"
        "    testq %rax, %rax\n"
        "    je 2f\n"
        "    pushq %rdi\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %rip, 0\n"
        "    jl 1f\n"
        "    pushq %rax\n" /* the child's pid; the stack is 16-byte aligned for the call */
        "    .cfi_adjust_cfa_offset 8\n"
        "    movl %eax, %edi\n"
        "    call zreap_stub_child_made\n"
        "    popq %rax\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    ret\n"
        "1:  negl %eax\n"
        "    movl %eax, %edi\n"
        "    jmp zreap_stub_vfork_failed\n"
        "2:  .cfi_adjust_cfa_offset -8\n"
        "    .cfi_register %rip, %rdi\n"
        "    jmpq *%rdi\n"
        "    .cfi_endproc\n"
        ".size vfork, .-vfork\n"
        ".popsection\n");
#endif
