//! The shim's settings parser (preload/src/config.rs) on arbitrary values of
//! the ZREAP_* variables. It must never panic, accept only signals in
//! 1..=SIGRTMAX (real-time names only as real-time signals), and describe a bad
//! value in one line.
#![no_main]

/// The shim's settings parser names the core crate `zreap`.
extern crate zreap_rs as zreap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::ffi::CStr;

/// The shim is a cdylib only: its settings module is compiled here from its
/// own source file.
#[allow(dead_code)]
#[path = "../../preload/src/config.rs"]
mod config;

#[derive(Arbitrary, Debug)]
struct Env<'a> {
    reap: Option<&'a str>,
    pdeathsig: Option<&'a str>,
    subreaper: Option<&'a str>,
    log: Option<&'a str>,
}

fn check_signal(name: &str) {
    let Some(n) = config::signal_number(name) else { return };
    assert!((1..=libc::SIGRTMAX()).contains(&n), "{name:?} -> {n}");
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if bare.starts_with("RTMIN") || bare.starts_with("RTMAX") {
        assert!(n >= libc::SIGRTMIN(), "{name:?} -> {n}, not a real-time signal");
    }
}

fuzz_target!(|env: Env<'_>| {
    let var = |name: &CStr| match name.to_bytes() {
        b"ZREAP_REAP" => env.reap,
        b"ZREAP_PDEATHSIG" => env.pdeathsig,
        b"ZREAP_SUBREAPER" => env.subreaper,
        b"ZREAP_LOG" => env.log,
        _ => panic!("unexpected variable {name:?}"),
    };
    match config::parse(var) {
        Ok(s) => {
            assert!(matches!(s.mode, config::OFF | config::HANDLER | config::ALL));
            assert!((0..=libc::SIGRTMAX()).contains(&s.pdeathsig));
            assert_eq!(s.log, env.log.filter(|l| !l.is_empty()));
        }
        Err(line) => assert!(line.starts_with("ZREAP_") && !line.contains('\n'), "{line:?}"),
    }
    for value in [env.reap, env.pdeathsig, env.subreaper, env.log].into_iter().flatten() {
        check_signal(value);
    }
});
