//! C tests of the reaper: each test compiles one program from `c-tests/` against
//! `include/zreap.h` and `libzreap.so` and runs it in its own process.

mod support;

#[test]
fn reaper_install() {
    support::run_c_test("c-tests/reaper_install.c");
}

#[test]
fn reaper_storm() {
    support::run_c_test("c-tests/reaper_storm.c");
}

#[test]
fn reaper_zwait() {
    support::run_c_test("c-tests/reaper_zwait.c");
}

#[test]
fn reaper_own_popen() {
    support::run_c_test("c-tests/reaper_own_popen.c");
}

#[test]
fn reaper_no_handler() {
    support::run_c_test("c-tests/reaper_no_handler.c");
}

#[test]
fn reaper_subreaper() {
    support::run_c_test("c-tests/reaper_subreaper.c");
}

#[test]
fn reaper_errno() {
    support::run_c_test("c-tests/reaper_errno.c");
}

#[test]
fn reaper_dropped() {
    support::run_c_test("c-tests/reaper_dropped.c");
}

#[test]
fn reaper_fallback() {
    support::run_c_test("c-tests/reaper_fallback.c");
}

#[test]
fn reaper_fork_safety() {
    support::run_c_test("c-tests/reaper_fork_safety.c");
}

#[test]
fn reaper_stats() {
    support::run_c_test("c-tests/reaper_stats.c");
}

#[test]
fn reaper_no_install() {
    support::run_c_test("c-tests/reaper_no_install.c");
}

#[test]
fn reaper_stolen() {
    support::run_c_test("c-tests/reaper_stolen.c");
}

#[test]
fn reaper_no_drop() {
    support::run_c_test("c-tests/reaper_no_drop.c");
}

#[test]
fn reaper_pid_reuse() {
    support::run_c_test_in_pid_namespace("c-tests/reaper_pid_reuse.c");
}

#[test]
fn reaper_watcher_nproc() {
    support::run_c_test("c-tests/reaper_watcher_nproc.c");
}

#[test]
fn reaper_sigchld_blocked() {
    support::run_c_test("c-tests/reaper_sigchld_blocked.c");
}

#[test]
fn reaper_disposition_replaced() {
    support::run_c_test("c-tests/reaper_disposition_replaced.c");
}
