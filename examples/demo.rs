//! The classic forking echo server, with and without zreap.
//!
//!     cargo run --release --example demo
//!
//! Builds `examples/echo_server_handwritten.c` (a SIGCHLD handler that calls
//! `wait()` once, as in Stevens, UNP ch. 5) and `examples/echo_server.c` (the
//! same server with `zreap_install(0)` instead), then runs a few rounds
//! against both at once: a client opens 50 connections, gets an echo on each,
//! and is killed, so all 50 server children exit together. After each round
//! it counts the zombies the round left behind.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use support::echo::{both_servers, CONNECTIONS};

const ROUNDS: usize = 5;

/// `support::build_c` links against `target/<profile>/libzreap.so`, but
/// `cargo run --example` leaves the freshly built library in
/// `target/<profile>/deps/`; `cargo build --lib` (a no-op when up to date)
/// puts it where `build_c` looks.
fn build_library() {
    let exe = std::env::current_exe().expect("current_exe");
    let Some(profile_dir) = exe.parent().filter(|d| d.ends_with("examples")).and_then(|d| d.parent()) else {
        return; // not run from a cargo target directory: build_c will say what is missing
    };
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => return,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--lib", "--quiet", "--profile", profile, "--manifest-path"])
        .arg(support::repo().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(profile_dir.parent().unwrap())
        .status()
        .expect("run cargo build --lib");
    assert!(status.success(), "cargo build --lib failed");
}

fn main() {
    build_library();
    println!("{ROUNDS} rounds; each: {CONNECTIONS} connections closed at once, then zombies counted\n");
    let (handwritten, zreap) = both_servers(ROUNDS);

    println!("        zombies left after the round");
    println!("round   wait()-once handler   zreap_install(0)");
    for (i, (h, z)) in handwritten.iter().zip(&zreap).enumerate() {
        println!("{:>5}   {:>19}   {:>16}", i + 1, h, z);
    }
    let (th, tz): (usize, usize) = (handwritten.iter().sum(), zreap.iter().sum());
    println!("total   {th:>19}   {tz:>16}\n");

    let verdict = match (th, tz) {
        (h, 0) if h > 0 => format!(
            "verdict: the hand-written handler leaked {h} zombies of {} exits; zreap_install(0) leaked none.",
            ROUNDS * CONNECTIONS
        ),
        (0, 0) => "verdict: no zombies either way; the race did not show on this machine this time.".to_string(),
        (_, z) => format!("verdict: FAIL: zreap_install(0) left {z} zombies."),
    };
    println!("{verdict}");
    if tz > 0 {
        std::process::exit(1);
    }
}
