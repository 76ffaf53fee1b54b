//! The CLI's /proc parsers (cli/src/procfs.rs) on arbitrary file contents, read
//! as the CLI reads them (lossy UTF-8). They must never panic, and what
//! parse_stat returns must be what a real stat line with those fields gives.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The CLI is a binary crate: its /proc module is compiled here from its own
/// source file.
#[allow(dead_code)]
#[path = "../../cli/src/procfs.rs"]
mod procfs;

/// A `stat` line as the kernel prints it, with the fields zreap reads.
fn stat_line(s: &procfs::Stat) -> String {
    format!(
        "{} ({}) {} {} {} {} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 {} 0 {} 1000 100",
        s.pid, s.comm, s.state, s.ppid, s.pgrp, s.pid, s.num_threads, s.starttime
    )
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(stat) = procfs::parse_stat(&text) {
        assert!(text.contains(&format!("({})", stat.comm)));
        assert!(!stat.state.is_ascii_whitespace() && stat.state != ')');
        assert_eq!(procfs::parse_stat(&stat_line(&stat)), Some(stat));
    }
    let status = procfs::parse_status(&text);
    assert!(status.nspid.len() <= text.len());
    let _ = procfs::parse_fdinfo_sigmask(&text);
    if let Some(up) = procfs::parse_uptime(&text) {
        assert!(up.is_finite());
    }
});
