//! The C tests of the reaper, spawning, parent-death signals and daemons under
//! AddressSanitizer + UBSan, and a subset under valgrind memcheck: zero
//! reports. docs/fuzzing.md says which tests are left out and why.

mod support;

use std::process::Command;

/// The instrumented programs carry the sanitizers, and the runtime starts.
#[test]
fn sanitizer_runtime_linked() {
    let exe = support::build_c_sanitized("c-tests/spawn_basic.c");
    let nm = Command::new("nm").arg(&exe).output().expect("run nm");
    let symbols = String::from_utf8_lossy(&nm.stdout);
    assert!(symbols.contains("__asan_init"), "no AddressSanitizer in {}", exe.display());
    assert!(symbols.contains("__ubsan_handle_"), "no UBSan in {}", exe.display());
    let out = Command::new(&exe).env("ASAN_OPTIONS", "verbosity=1").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AddressSanitizer"), "the ASan runtime did not start");
}

/// One test per program: `c-tests/NAME.c` run by `$runner`.
macro_rules! c_tests {
    ($runner:ident: $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::support::$runner(concat!("c-tests/", stringify!($name), ".c"));
            }
        )*
    };
}

/// Every reaper, spawn, pdeath and daemon program but reaper_fork_safety: its
/// forked children call zspawn, whose child stack comes from calloc, and
/// ASan's allocator is not fork-safe (a child deadlocks on an allocator lock
/// another thread held at fork time).
mod asan {
    c_tests!(run_c_test_sanitized:
        reaper_dropped, reaper_errno, reaper_fallback, reaper_install, reaper_no_drop,
        reaper_no_handler, reaper_no_install, reaper_own_popen, reaper_stats, reaper_stolen,
        reaper_storm, reaper_subreaper, reaper_zwait,
        spawn_basic, spawn_cwd, spawn_env, spawn_exec_errors, spawn_fds, spawn_session,
        spawn_sigstate, spawn_thread, spawn_validate, spawn_zfork,
        pdeath_spawn_exit, pdeath_spawn_killed, pdeath_spawn_race, pdeath_spawn_thread,
        pdeath_zfork_race, pdeath_zfork_thread,
        daemon_errors, daemon_facts, daemon_loop, daemon_pidfile, daemon_ready,
    );
}

/// The programs whose checks hold under valgrind and that finish in seconds
/// there. Left out: programs that check for exec errors from zspawn (valgrind
/// runs clone(CLONE_VM|CLONE_VFORK) as a plain fork, so the parent never sees
/// the child's errno), count fds or caught signals (valgrind's own), need
/// pidfd_open (valgrind 3.19 lacks it: the no-pidfd path then runs instead) or
/// take minutes under valgrind.
mod valgrind {
    c_tests!(run_c_test_valgrind:
        reaper_install, reaper_no_install, reaper_stolen, reaper_subreaper, reaper_zwait,
        spawn_basic, spawn_cwd, spawn_fds, spawn_session, spawn_sigstate, spawn_validate,
        spawn_zfork,
        pdeath_spawn_exit, pdeath_spawn_killed, pdeath_zfork_thread,
    );
}
