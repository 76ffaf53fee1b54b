// Proves: include/zreap.h compiles as C++ (g++ and clang++, -Wall -Wextra
// -pedantic -Werror), is included first and twice without trouble, declares
// the API with C linkage (this program links against libzreap.so and calls
// into it), and every function, struct field and callback has exactly the
// type API.md gives (checked with static_assert/std::is_same, which C++ can
// do precisely). Built and run by tests/c_spawn.rs, not by run_c_test.
#include "zreap.h"
#include "zreap.h" // include guard

#include <cstdio>
#include <cstring>
#include <type_traits>

// ---- functions ----
static_assert(std::is_same<decltype(&zreap_install), int (*)(unsigned)>::value, "zreap_install");
static_assert(std::is_same<decltype(&zreap_uninstall), int (*)(void)>::value, "zreap_uninstall");
static_assert(std::is_same<zreap_exit_fn, void (*)(pid_t, int, void *)>::value, "zreap_exit_fn");
static_assert(std::is_same<decltype(&zreap_all), int (*)(zreap_exit_fn, void *)>::value,
              "zreap_all");
static_assert(std::is_same<decltype(&zwait), pid_t (*)(pid_t, int *, int)>::value, "zwait");
static_assert(std::is_same<decltype(&zreap_fd), int (*)(void)>::value, "zreap_fd");
static_assert(std::is_same<decltype(&zspawn_options_init), void (*)(zspawn_options *)>::value,
              "zspawn_options_init");
static_assert(std::is_same<decltype(&zspawn), pid_t (*)(const char *, char *const[],
                                                         char *const[], const zspawn_options *)>::value,
              "zspawn");
static_assert(std::is_same<decltype(&zfork), pid_t (*)(const zspawn_options *)>::value, "zfork");
static_assert(std::is_same<decltype(&zdaemon_options_init), void (*)(zdaemon_options *)>::value,
              "zdaemon_options_init");
static_assert(std::is_same<decltype(&zdaemonize), pid_t (*)(const zdaemon_options *)>::value,
              "zdaemonize");
static_assert(std::is_same<decltype(&zdaemon_ready), int (*)(int)>::value, "zdaemon_ready");
static_assert(std::is_same<decltype(&zreap_stats_get), int (*)(zreap_stats *)>::value,
              "zreap_stats_get");
static_assert(std::is_same<decltype(&zreap_version), const char *(*)(void)>::value,
              "zreap_version");

// ---- structs: tag and typedef name the same type; field types ----
static_assert(std::is_same<struct zspawn_options, zspawn_options>::value, "zspawn_options tag");
static_assert(std::is_same<struct zdaemon_options, zdaemon_options>::value, "zdaemon_options tag");
static_assert(std::is_same<struct zreap_stats, zreap_stats>::value, "zreap_stats tag");

static_assert(std::is_same<decltype(zspawn_options::flags), uint32_t>::value, "flags");
static_assert(std::is_same<decltype(zspawn_options::pdeathsig), int>::value, "pdeathsig");
static_assert(std::is_same<decltype(zspawn_options::cwd), const char *>::value, "cwd");
static_assert(std::is_same<decltype(zspawn_options::stdin_fd), int>::value, "stdin_fd");
static_assert(std::is_same<decltype(zspawn_options::stdout_fd), int>::value, "stdout_fd");
static_assert(std::is_same<decltype(zspawn_options::stderr_fd), int>::value, "stderr_fd");

static_assert(std::is_same<decltype(zdaemon_options::flags), uint32_t>::value, "flags");
static_assert(std::is_same<decltype(zdaemon_options::workdir), const char *>::value, "workdir");
static_assert(std::is_same<decltype(zdaemon_options::pidfile), const char *>::value, "pidfile");
static_assert(std::is_same<decltype(zdaemon_options::umask), int>::value, "umask");

static_assert(std::is_same<decltype(zreap_stats::reaped), uint64_t>::value, "reaped");
static_assert(std::is_same<decltype(zreap_stats::reported), uint64_t>::value, "reported");
static_assert(std::is_same<decltype(zreap_stats::dropped), uint64_t>::value, "dropped");
static_assert(std::is_same<decltype(zreap_stats::tracked), uint64_t>::value, "tracked");

// ---- macros ----
#if !defined(ZREAP_OWN) || !defined(ZREAP_SUBREAPER) || !defined(ZREAP_NO_HANDLER) ||        \
    !defined(ZSPAWN_SEARCH_PATH) || !defined(ZSPAWN_SETSID) || !defined(ZSPAWN_SETPGROUP) || \
    !defined(ZDAEMON_KEEP_FDS) || !defined(ZDAEMON_KEEP_STDIO) || !defined(ZDAEMON_NO_CHDIR) || \
    !defined(ZDAEMON_WAIT_READY) || !defined(ZDAEMON_RETURN)
#error "a flag of API.md is missing or not a macro"
#endif
static_assert(ZREAP_OWN == 0x1u && ZREAP_SUBREAPER == 0x2u && ZREAP_NO_HANDLER == 0x4u, "ZREAP_*");
static_assert(ZSPAWN_SEARCH_PATH == 0x1u && ZSPAWN_SETSID == 0x2u && ZSPAWN_SETPGROUP == 0x4u,
              "ZSPAWN_*");
static_assert(ZDAEMON_KEEP_FDS == 0x1u && ZDAEMON_KEEP_STDIO == 0x2u && ZDAEMON_NO_CHDIR == 0x4u &&
                  ZDAEMON_WAIT_READY == 0x8u && ZDAEMON_RETURN == 0x10u,
              "ZDAEMON_*");

static void on_exit_cb(pid_t, int, void *) {}

// Calls as a C++ program would write them; compiled and linked, never run.
int use_every_call();
int use_every_call() {
    int ws = 0;
    char prog[] = "true";
    char *argv[] = {prog, nullptr};
    zspawn_options so;
    zspawn_options_init(&so);
    so.flags = ZSPAWN_SEARCH_PATH | ZSPAWN_SETSID;
    zdaemon_options dopt;
    zdaemon_options_init(&dopt);
    dopt.flags = ZDAEMON_RETURN | ZDAEMON_NO_CHDIR;
    zreap_stats st;
    int sum = zreap_install(ZREAP_OWN | ZREAP_SUBREAPER | ZREAP_NO_HANDLER);
    sum += zreap_uninstall() + zreap_all(on_exit_cb, &ws) + zreap_fd();
    sum += zwait(-1, &ws, 0) + zspawn("true", argv, nullptr, &so) + zfork(nullptr);
    sum += zdaemonize(&dopt) + zdaemon_ready(0) + zreap_stats_get(&st);
    return sum;
}

int main(int argc, char **) {
    if (argc > 1000) return use_every_call();
    // Calls that do nothing harmful, through C linkage.
    const char *v = zreap_version();
    zspawn_options so;
    std::memset(&so, 0x55, sizeof so);
    zspawn_options_init(&so);
    zreap_stats st;
    if (v == nullptr || zreap_stats_get(&st) != 0 || so.stdin_fd != -1 || so.cwd != nullptr) {
        std::fprintf(stderr, "header_cpp: unexpected results from the library\n");
        return 1;
    }
    std::printf("header_cpp: ok (zreap %s)\n", v);
    return 0;
}
