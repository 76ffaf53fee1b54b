//! C tests of `zdaemonize`, `zdaemon_ready` and `zdaemon_options_init`: each
//! test compiles one `c-tests/daemon_*.c` program against `include/zreap.h`
//! and `libzreap.so` and runs it in its own process. Every program makes
//! itself a child subreaper first, so the daemons it makes are reparented to
//! it (not to init), and it reaps or kills every one of them before exiting.

mod support;

#[test]
fn daemon_facts() {
    support::run_c_test("c-tests/daemon_facts.c");
}

#[test]
fn daemon_pidfile() {
    support::run_c_test("c-tests/daemon_pidfile.c");
}

#[test]
fn daemon_errors() {
    support::run_c_test("c-tests/daemon_errors.c");
}

#[test]
fn daemon_ready() {
    support::run_c_test("c-tests/daemon_ready.c");
}

#[test]
fn daemon_loop() {
    support::run_c_test("c-tests/daemon_loop.c");
}
