//! The C tests of the reaper, spawning, parent-death signals and daemons under
//! AddressSanitizer + UBSan, and a subset under valgrind memcheck: zero
//! reports. docs/fuzzing.md says which tests are left out and why.

use zreap_testsupport as support;

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

/// The C programs `capi/tests/c_programs.rs` runs (found, not listed), but
/// those in `skip`, each with its reason.
fn programs(skip: &[(&str, &str)]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(support::repo().join("c-tests"))
        .expect("c-tests/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".c").map(str::to_string))
        .filter(|n| !["shim_", "seed_", "header_", "count_"].iter().any(|p| n.starts_with(p)))
        .filter(|n| !skip.iter().any(|(s, _)| s == n))
        .collect();
    names.sort();
    names
}

fn run_all(skip: &[(&str, &str)], runner: fn(&str)) {
    for name in programs(skip) {
        println!("{name}");
        runner(&format!("c-tests/{name}.c"));
    }
}

/// Every C program under ASan + UBSan, but these.
const ASAN_SKIP: &[(&str, &str)] = &[
    ("reaper_pid_reuse", "steers pids in a user+pid namespace, whose init would own the sanitizer's logs"),
    ("reaper_parked_pid_reuse", "steers pids in a user+pid namespace, whose init would own the sanitizer's logs"),
    (
        "reaper_raw_clone_child",
        "steers pids, which outside a pid namespace of its own any process running beside it may take first",
    ),
    ("reaper_watcher_nproc", "runs as nobody at RLIMIT_NPROC 0: the sanitizer runtime cannot start its threads"),
    (
        "spawn_service_fork_race",
        "forks from one thread while another allocates: the fork child's calloc waits for a lock of ASan's \
         allocator that the other thread held at the fork (glibc's malloc has fork handlers, this ASan's has none)",
    ),
    (
        "reaper_dropped",
        "forks 65,540 children: under ASan each fork copies the shadow memory's page tables, and on a loaded \
         2-CPU machine a run was still going after 196 s; libzreap.so is not instrumented, and c_programs.rs \
         runs it plainly",
    ),
];

/// The programs whose checks hold under valgrind and finish in seconds there.
/// Left out: programs that check for exec errors from zspawn (valgrind runs
/// clone(CLONE_VM|CLONE_VFORK) as a plain fork, so the parent never sees the
/// child's errno), count fds or caught signals (valgrind has its own), need
/// pidfd_open (valgrind 3.19 lacks it: the no-pidfd path runs instead), run
/// as another user, or take minutes under valgrind.
const VALGRIND_ONLY: &[&str] = &[
    "reaper_install",
    "reaper_no_install",
    "reaper_stolen",
    "reaper_subreaper",
    "reaper_zwait",
    "reaper_disposition_replaced",
    "spawn_basic",
    "spawn_cwd",
    "spawn_fds",
    "spawn_in_fork_children",
    "spawn_session",
    "spawn_sigstate",
    "spawn_validate",
    "spawn_zfork",
    "pdeath_spawn_exit",
    "pdeath_spawn_killed",
    "pdeath_zfork_thread",
];

#[test]
fn every_c_program_under_asan_and_ubsan() {
    run_all(ASAN_SKIP, support::run_c_test_sanitized);
}

#[test]
fn c_programs_under_valgrind() {
    for name in VALGRIND_ONLY {
        support::run_c_test_valgrind(&format!("c-tests/{name}.c"));
    }
}
