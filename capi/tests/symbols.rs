//! `libzreap.so` exports the C API and nothing else: every defined dynamic
//! symbol starts with `z`, and every function of the contract is there.

use std::process::Command;
use zreap_testsupport as support;

/// The defined dynamic symbols of a shared library (`nm -D --defined-only`).
fn exported(library: &std::path::Path) -> Vec<String> {
    let out = Command::new("nm").arg("-D").arg("--defined-only").arg(library).output().expect("run nm");
    assert!(out.status.success(), "nm failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().nth(2)).map(String::from).collect()
}

#[test]
fn only_the_c_api_is_exported() {
    let symbols = exported(&support::profile_dir().join("libzreap.so"));
    let foreign: Vec<&String> = symbols.iter().filter(|s| !s.starts_with('z')).collect();
    assert!(foreign.is_empty(), "libzreap.so exports more than the C API: {foreign:?}");
    for function in [
        "zreap_install",
        "zreap_uninstall",
        "zreap_all",
        "zwait",
        "zreap_fd",
        "zspawn_options_init",
        "zspawn",
        "zfork",
        "zdaemon_options_init",
        "zdaemonize",
        "zdaemon_ready",
        "zreap_stats_get",
        "zreap_version",
    ] {
        assert!(symbols.iter().any(|s| s == function), "{function} is not exported");
    }
}
