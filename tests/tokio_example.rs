//! `examples/tokio_reap_fd.rs` (built by `cargo test`) runs and collects the
//! exit of each of its children through tokio's `AsyncFd`.

use std::process::Command;
use std::time::Duration;
use zreap_testsupport as support;

#[test]
fn tokio_example_reaps_every_child() {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let exe = deps.parent().unwrap().join("examples/tokio_reap_fd");
    assert!(
        exe.is_file(),
        "{} missing: `cargo test` (without --test) or `cargo build --examples` builds it",
        exe.display()
    );
    let out = support::run_with_deadline(&mut Command::new(&exe), Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.ends_with("all children reaped\n"), "{stdout}");
    for code in 0..5 {
        let ended = if code == 0 { "exit status: 0".to_string() } else { format!("exit status: {code}") };
        assert!(stdout.contains(&ended), "no {ended}: {stdout}");
    }
}
