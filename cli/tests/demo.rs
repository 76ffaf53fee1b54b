//! `zreap demo`: compiles the embedded C servers and client at run time and
//! runs two rounds; the zreap-linked server must leave no zombie.

mod common;

use common::{run_with_deadline, zreap};
use std::process::Command;
use std::time::Duration;

#[test]
fn demo_runs_and_zreap_leaks_nothing() {
    let out = run_with_deadline(Command::new(zreap()).args(["demo", "--rounds", "2"]), Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    common::require_shim("demo_runs_and_zreap_leaks_nothing");
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("round   wait()-once handler   same + LD_PRELOAD shim   zreap_install(0)"), "{stdout}");
    let total = stdout.lines().find(|l| l.starts_with("total")).expect("a total line");
    let columns: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(columns.len(), 4, "total line: {total}");
    assert_eq!(columns[2], "0", "the same server under the shim leaked: {total}");
    assert_eq!(columns[3], "0", "zreap_install(0) leaked: {total}");
    assert!(stdout.contains("leaked 0"), "{stdout}");
}

#[test]
fn demo_rejects_zero_rounds() {
    let out = run_with_deadline(Command::new(zreap()).args(["demo", "--rounds", "0"]), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2));
}
