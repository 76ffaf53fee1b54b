//! A seconds-long smoke run of the benchmark: it must finish (within a
//! generous 15 minutes), exit 0 and print (and write) a table with every row.
//! No timing is asserted.

use std::process::Command;
use std::time::Duration;

#[test]
fn quick_run_prints_every_row() {
    let out_dir = std::env::temp_dir().join(format!("zreap-bench-smoke-{}", std::process::id()));
    let out = zreap_testsupport::run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_zreap-bench")).args(["--quick", "--out"]).arg(&out_dir),
        Duration::from_secs(900),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "zreap-bench --quick failed: {}\n{stdout}\n{stderr}", out.status);

    let doc = std::fs::read_to_string(out_dir.join("benchmarks.md")).expect("benchmarks.md written");
    assert!(out_dir.join("spawn_latency.svg").exists(), "spawn_latency.svg written");
    let rows = [
        "| 1. spawn+wait /bin/true, 8 MiB parent | posix_spawn",
        "| 1. spawn+wait /bin/true, 8 MiB parent | zspawn (",
        "| 1. spawn+wait /bin/true, 8 MiB parent | zspawn, pdeathsig, non-main thread",
        "| 1. spawn+wait /bin/true, 8 MiB parent | fork+execve",
        "| 1. spawn+wait /bin/true, 8 MiB parent | vfork+execve",
        "| 1. spawn+wait /bin/true, 8 MiB parent | Command",
        "| 2. fork + _exit + wait, 8 MiB parent | raw fork + waitpid",
        "| 2. fork + _exit + wait, 8 MiB parent | zreap::fork + zreap::wait",
        "raw blocking waitpid(-1) loop",
        "install(0) handler + reap_all, fork() children",
        "install(0) handler + reap_all, zreap::fork children",
        "install(OWN) + reap_all, zreap::fork children (pidfds)",
        "install(NO_HANDLER), poll(reap_fd) + reap_all, fork() children",
        "zombies left after all",
        "release to zreap::wait(pid) (the keeper reaps), N=10 ",
        "release to zreap::wait(pid) (the keeper reaps): ratio",
        "contrast: waitpid(pid, WNOHANG) scan of all children: ratio",
        "one /bin/true start (loads the preload): shim, ZREAP_REAP=handler",
        "parent, per fork+execve+waitpid of the tiny static child: shim, ZREAP_REAP=all",
        "fork+execve(tiny static child)+waitpid in C | empty .so preloaded",
        "fork+execve(tiny static child)+waitpid in C | shim, ZREAP_REAP=handler",
        "shim, ZREAP_REAP=all, against handler",
        "generated C files | shim, ZREAP_REAP=all",
        "RSS per tracked child",
        "RSS added by install(0)",
        "RSS added by install(OWN)",
        "RSS added by install(NO_HANDLER)",
        "| 7. start of a tiny static child with N live children | zreap::spawn, install(OWN), N=10 ",
        "| 7. start of a tiny static child with N live children | zreap::spawn, install(empty), N=50 ",
        "| 7. start of a tiny static child with N live children | zreap::fork, install(OWN), N=10 ",
        "| 7. start of a tiny static child with N live children | zreap::fork, install(empty), N=50 ",
        "| 7. start of a tiny static child with N live children | raw posix_spawn (untracked), N=10 ",
        "| 7. start of a tiny static child with N live children | std::process::Command, N=10 ",
        "| 7. start of a tiny static child with N live children | tokio::process::Command, N=10 ",
        "host posix_spawn + waitpid, N=50 untracked children",
        "host posix_spawn + waitpid, N=50 tracked zreap::spawn children, install(OWN)",
        "| 8. exit-to-delivery latency with N live children | waitpid(pid), posix_spawn child, N=10 ",
        "| 8. exit-to-delivery latency with N live children | zreap::wait(pid), install(OWN), N=50 ",
        "| 8. exit-to-delivery latency with N live children | poll(reap_fd) + reap_all, install(OWN), N=10 ",
        "| 8. exit-to-delivery latency with N live children | textbook SA_SIGINFO handler",
        "| 8. exit-to-delivery latency with N live children | zreap::wait(pid), install(empty), N=50 ",
        "| 8. exit-to-delivery latency with N live children | tokio Child::wait, N=10 ",
        "waitpid(-1, WNOHANG) loop, N=10, against waitpid(pid) |",
        "latency with N live children, every process on CPU",
    ];
    // The peers and the system-call rows need the tools scripts/setup.sh
    // installs; without them the run notes the skip.
    let have = |cmd: &str, args: &[&str]| Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success());
    let mut optional = Vec::new();
    if have("pkg-config", &["--exists", "libuv"]) {
        optional.extend([
            "| 7. start of a tiny static child with N live children | libuv uv_spawn, N=10 ",
            "libuv exit callback",
        ]);
    }
    if have("pkg-config", &["--exists", "glib-2.0"]) {
        optional.extend(["GLib g_spawn_async + g_child_watch_add, N=50 ", "GLib child watch, N=10 "]);
    }
    if have("strace", &["-V"]) {
        optional.extend([
            "| 9. system calls per exit (strace -f), N live children | waitpid(pid) that blocks, N=10 ",
            "| 9. system calls per exit (strace -f), N live children | zreap::wait(pid) that blocks, install(OWN), N=50 ",
            "| 9. system calls per exit (strace -f), N live children | poll(reap_fd) + reap_all, install(OWN), N=50 ",
        ]);
    }
    for row in rows.into_iter().chain(optional) {
        assert!(stdout.contains(row), "row {row:?} missing from the printed table:\n{stdout}");
        assert!(doc.contains(row), "row {row:?} missing from benchmarks.md");
    }
    // Every timed row has a number in the quick run (no "error").
    for line in stdout.lines().filter(|l| ["| 1.", "| 2.", "| 7.", "| 8.", "| 9."].iter().any(|p| l.starts_with(p))) {
        assert!(!line.contains("| error |"), "a latency row failed: {line}");
    }
    assert!(doc.contains("## Goals of issue 13") && doc.contains("- Goal 1 ") && doc.contains("- Goal 2 "));
    assert!(doc.contains("## Machine") && doc.contains("## Command") && doc.contains("spawn_latency.svg"));
    let _ = std::fs::remove_dir_all(&out_dir);
}
