/* Proves: include/zreap.h is a self-contained, strictly conforming C99 header
 * (it is included first, twice, with no feature-test macro, and compiled with
 * -std=c99 -Wall -Wextra -pedantic -Werror by gcc and clang), and a program
 * written against /work/shared/API.md compiles and links unchanged: every
 * function is used through a pointer of exactly the type API.md writes, every
 * struct is used both as `struct NAME` and as the typedef `NAME` with the
 * field types API.md gives, every macro exists as a macro with its value.
 * Built and run by tests/c_spawn.rs (not by run_c_test): it only calls
 * zreap_version() and zspawn_options_init()/zdaemon_options_init(). */
#include "zreap.h"
#include "zreap.h" /* include guard */

#include <stdio.h>
#include <string.h>
#include <sys/wait.h> /* WNOHANG */

/* Compile-time assertion for C99. */
#define STATIC_ASSERT(cond, name) typedef char static_assert_##name[(cond) ? 1 : -1]

/* ---- macros: present as macros, with the documented values ---- */
#if !defined(ZREAP_OWN) || !defined(ZREAP_SUBREAPER) || !defined(ZREAP_NO_HANDLER)
#error "ZREAP_* reaper flags must be macros"
#endif
#if !defined(ZSPAWN_SEARCH_PATH) || !defined(ZSPAWN_SETSID) || !defined(ZSPAWN_SETPGROUP)
#error "ZSPAWN_* flags must be macros"
#endif
#if !defined(ZDAEMON_KEEP_FDS) || !defined(ZDAEMON_KEEP_STDIO) || !defined(ZDAEMON_NO_CHDIR) || \
    !defined(ZDAEMON_WAIT_READY) || !defined(ZDAEMON_RETURN)
#error "ZDAEMON_* flags must be macros"
#endif
#if ZREAP_OWN != 0x1 || ZREAP_SUBREAPER != 0x2 || ZREAP_NO_HANDLER != 0x4
#error "ZREAP_* values differ from API.md"
#endif
#if ZSPAWN_SEARCH_PATH != 0x1 || ZSPAWN_SETSID != 0x2 || ZSPAWN_SETPGROUP != 0x4
#error "ZSPAWN_* values differ from API.md"
#endif
#if ZDAEMON_KEEP_FDS != 0x1 || ZDAEMON_KEEP_STDIO != 0x2 || ZDAEMON_NO_CHDIR != 0x4 || \
    ZDAEMON_WAIT_READY != 0x8 || ZDAEMON_RETURN != 0x10
#error "ZDAEMON_* values differ from API.md"
#endif

/* The flags are unsigned, as API.md's 0x1u: in unsigned arithmetic 1 - 2 > 0. */
STATIC_ASSERT(ZREAP_OWN - 2 > 0 && ZREAP_SUBREAPER - 3 > 0 && ZREAP_NO_HANDLER - 5 > 0, reaper_flags_unsigned);
STATIC_ASSERT(ZSPAWN_SEARCH_PATH - 2 > 0 && ZSPAWN_SETSID - 3 > 0 && ZSPAWN_SETPGROUP - 5 > 0, spawn_flags_unsigned);
STATIC_ASSERT(ZDAEMON_KEEP_FDS - 2 > 0 && ZDAEMON_KEEP_STDIO - 3 > 0 && ZDAEMON_NO_CHDIR - 5 > 0 &&
                  ZDAEMON_WAIT_READY - 9 > 0 && ZDAEMON_RETURN - 17 > 0,
              daemon_flags_unsigned);

/* The flags are usable where API.md's types expect them. */
static const unsigned reaper_flags = ZREAP_OWN | ZREAP_SUBREAPER | ZREAP_NO_HANDLER;
static const uint32_t spawn_flags = ZSPAWN_SEARCH_PATH | ZSPAWN_SETSID | ZSPAWN_SETPGROUP;
static const uint32_t daemon_flags = ZDAEMON_KEEP_FDS | ZDAEMON_KEEP_STDIO | ZDAEMON_NO_CHDIR |
                                     ZDAEMON_WAIT_READY | ZDAEMON_RETURN;

/* ---- types ---- */
STATIC_ASSERT(sizeof(pid_t) == sizeof(int), pid_t_is_int);

/* zreap_exit_fn is exactly void (*)(pid_t, int, void *). */
static void on_exit_cb(pid_t pid, int wstatus, void *ctx) {
    (void)pid;
    (void)wstatus;
    (void)ctx;
}
static void (*const exit_fn_raw)(pid_t, int, void *) = on_exit_cb;
static const zreap_exit_fn exit_fn = on_exit_cb;

/* Structs: `struct NAME` and `NAME` name the same type; fields have API.md's types. */
static int use_structs(void) {
    struct zspawn_options so;
    zspawn_options *sop = &so;
    uint32_t *so_flags = &sop->flags;
    int *so_pdeathsig = &sop->pdeathsig;
    const char **so_cwd = &sop->cwd;
    int *so_in = &sop->stdin_fd;
    int *so_out = &sop->stdout_fd;
    int *so_err = &sop->stderr_fd;

    struct zdaemon_options dopt;
    zdaemon_options *dop = &dopt;
    uint32_t *do_flags = &dop->flags;
    const char **do_workdir = &dop->workdir;
    const char **do_pidfile = &dop->pidfile;
    int *do_umask = &dop->umask;

    struct zreap_stats st;
    zreap_stats *stp = &st;
    uint64_t *st_reaped = &stp->reaped;
    uint64_t *st_reported = &stp->reported;
    uint64_t *st_dropped = &stp->dropped;
    uint64_t *st_tracked = &stp->tracked;

    zspawn_options_init(sop);
    zdaemon_options_init(dop);
    memset(stp, 0, sizeof *stp);

    /* The documented defaults. */
    int ok = *so_flags == 0 && *so_pdeathsig == 0 && *so_cwd == NULL && *so_in == -1 &&
             *so_out == -1 && *so_err == -1;
    ok = ok && *do_flags == 0 && (*do_workdir == NULL || strcmp(*do_workdir, "/") == 0) &&
         *do_pidfile == NULL && *do_umask == 0;
    ok = ok && *st_reaped == 0 && *st_reported == 0 && *st_dropped == 0 && *st_tracked == 0;
    return ok;
}

/* ---- functions: exactly API.md's signatures ---- */
static int (*const f_install)(unsigned flags) = zreap_install;
static int (*const f_uninstall)(void) = zreap_uninstall;
static int (*const f_all)(zreap_exit_fn on_exit, void *ctx) = zreap_all;
static pid_t (*const f_zwait)(pid_t pid, int *wstatus, int options) = zwait;
static int (*const f_fd)(void) = zreap_fd;
static void (*const f_spawn_init)(zspawn_options *opts) = zspawn_options_init;
static pid_t (*const f_zspawn)(const char *path, char *const argv[], char *const envp[],
                               const zspawn_options *opts) = zspawn;
static pid_t (*const f_zfork)(const zspawn_options *opts) = zfork;
static void (*const f_daemon_init)(zdaemon_options *opts) = zdaemon_options_init;
static pid_t (*const f_daemonize)(const zdaemon_options *opts) = zdaemonize;
static int (*const f_ready)(int err) = zdaemon_ready;
static int (*const f_stats)(zreap_stats *out) = zreap_stats_get;
static const char *(*const f_version)(void) = zreap_version;

/* Calls written the way API.md shows them. Never run (see main). */
int use_every_call(void);
int use_every_call(void) {
    int ws = 0;
    char *argv[] = {"true", NULL};
    char *envp[] = {"A=1", NULL};
    zspawn_options so;
    zdaemon_options dopt;
    zreap_stats st;
    int sum = 0;
    sum += zreap_install(ZREAP_OWN | ZREAP_SUBREAPER);
    sum += zreap_uninstall();
    sum += zreap_all(on_exit_cb, NULL);
    sum += zreap_all(NULL, &ws);
    sum += (int)zwait(-1, &ws, WNOHANG);
    sum += zreap_fd();
    zspawn_options_init(&so);
    so.flags = ZSPAWN_SEARCH_PATH;
    so.cwd = "/";
    sum += (int)zspawn("true", argv, envp, &so);
    sum += (int)zspawn("/bin/true", argv, NULL, NULL);
    sum += (int)zfork(&so);
    zdaemon_options_init(&dopt);
    dopt.flags = ZDAEMON_RETURN;
    dopt.workdir = "/";
    dopt.pidfile = NULL;
    dopt.umask = 022;
    sum += (int)zdaemonize(&dopt);
    sum += zdaemon_ready(0);
    sum += zreap_stats_get(&st);
    sum += zreap_version() != NULL;
    return sum;
}

int main(int argc, char **argv) {
    (void)argv;
    if (argc > 1000) return use_every_call(); /* compiled and linked, never run */
    const char *v = f_version();
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "zreap_version() returned %s\n", v ? "\"\"" : "NULL");
        return 1;
    }
    if (!use_structs()) {
        fprintf(stderr, "zspawn_options_init/zdaemon_options_init defaults differ from API.md\n");
        return 1;
    }
    /* Reference every pointer so none is unused. */
    int n = (f_install != NULL) + (f_uninstall != NULL) + (f_all != NULL) + (f_zwait != NULL) +
            (f_fd != NULL) + (f_spawn_init != NULL) + (f_zspawn != NULL) + (f_zfork != NULL) +
            (f_daemon_init != NULL) + (f_daemonize != NULL) + (f_ready != NULL) +
            (f_stats != NULL) + (exit_fn != NULL) + (exit_fn_raw != NULL) + (reaper_flags != 0) + (spawn_flags != 0) +
            (daemon_flags != 0);
    printf("header_c99: ok (zreap %s, %d symbols)\n", v, n);
    return 0;
}
