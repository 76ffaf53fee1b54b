//! The short versions of the stress scenarios: `zreap-stress --quick
//! SCENARIO`, one process per run (each case runs in a process of its own
//! inside it, and the stress command is a subreaper that reaps whatever a
//! case leaves), bounded by a deadline. No timing is asserted.

use std::process::Command;
use std::time::Duration;

/// Runs `zreap-stress --quick ARGS` for at most 240 s (killed then: its own
/// workers get their parent-death handling, and its subreaping ends with it).
fn quick(args: &[&str]) {
    let out = zreap_testsupport::run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_zreap-stress")).arg("--quick").args(args),
        Duration::from_secs(240),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "zreap-stress --quick {args:?}: {}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains(" passed, 0 failed"), "no summary line:\n{stdout}");
}

#[test]
fn children() {
    quick(&["children"]);
}

#[test]
fn pid_reuse() {
    quick(&["pid-reuse"]);
}

#[test]
fn echo() {
    quick(&["echo"]);
}

#[test]
fn sigint() {
    quick(&["sigint"]);
}

#[test]
fn limits() {
    let cases = ["nproc-all", "nproc-own", "nproc-no-handler", "nofile-all", "nofile-own", "nofile-no-handler"];
    let mut args = vec!["limits"];
    for case in cases {
        args.extend(["--case", case]);
    }
    quick(&args);
}

#[test]
fn limits_install_at_nproc() {
    quick(&["limits", "--case", "install-nproc"]);
}

#[test]
fn eintr() {
    quick(&["eintr"]);
}

#[test]
fn daemon() {
    quick(&["daemon"]);
}

#[test]
fn waits() {
    quick(&["waits"]);
}
