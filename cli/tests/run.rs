//! `zreap run`: the shim injection (exec mode) and the minimal init.
//! Every test needs libzreap_preload.so next to the binary (`zreap run`
//! refuses to start without it) and fails when the workspace was not built
//! (the missing-shim error itself is tested with a copy of the binary).

mod common;

use common::{become_subreaper, first_line, reap_pids, require_shim, run_with_deadline, zreap};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn zreap_run(args: &[&str]) -> std::process::Output {
    become_subreaper();
    run_with_deadline(Command::new(zreap()).arg("run").args(args), LIMIT)
}

#[test]
fn missing_shim_is_a_clear_error() {
    // A copy of the binary in a directory without the shim (and no ../lib).
    let dir = std::env::temp_dir().join(format!("zreap-noshim-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("zreap");
    std::fs::copy(zreap(), &exe).unwrap();
    let out = run_with_deadline(Command::new(&exe).args(["run", "--", "true"]), LIMIT);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libzreap_preload.so") && err.contains("missing"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["--reap", "bogus", "--", "true"],
        &["--pdeathsig", "NOPE", "--", "true"],
        &["--pdeathsig", "0", "true"],
    ] {
        let out = zreap_run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn exec_sets_the_environment() {
    require_shim("exec_sets_the_environment");
    let shim = common::shim().unwrap();
    let script = r#"echo "$LD_PRELOAD|$ZREAP_REAP|${ZREAP_PDEATHSIG-unset}|${ZREAP_SUBREAPER-unset}"; exit 5"#;
    let out = zreap_run(&["--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{}|handler|unset|unset", shim.display()));

    let out = zreap_run(&["--reap", "all", "--pdeathsig", "TERM", "--subreaper", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{}|all|15|1", shim.display()));

    // An existing LD_PRELOAD is kept; the shim is appended.
    let out = run_with_deadline(
        Command::new(zreap())
            .args(["run", "--", "sh", "-c", "echo $LD_PRELOAD"])
            .env("LD_PRELOAD", "/nonexistent/x.so"),
        LIMIT,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("/nonexistent/x.so:{}", shim.display()));
}

#[test]
fn exec_replaces_zreap() {
    require_shim("exec_replaces_zreap");
    let mut child =
        Command::new(zreap()).args(["run", "--", "sh", "-c", "echo $$"]).stdout(Stdio::piped()).spawn().unwrap();
    let line = first_line(child.stdout.take().unwrap(), LIMIT);
    let pid = child.id();
    child.wait().unwrap();
    assert_eq!(line.map(|l| l.trim().to_string()), Some(pid.to_string()), "CMD runs in zreap's own process");

    // Killed by a signal: with exec, the signal is zreap's own.
    let out = zreap_run(&["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");

    let out = zreap_run(&["--", "/nonexistent/cmd"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
}

#[test]
fn init_propagates_the_exit_status() {
    require_shim("init_propagates_the_exit_status");
    let out = zreap_run(&["--init", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let out = zreap_run(&["--init", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(128 + 9), "killed by SIGKILL: 137: {out:?}");
    let out = zreap_run(&["--init", "--", "sh", "-c", "kill -SEGV $$"]);
    assert_eq!(out.status.code(), Some(128 + 11), "{out:?}");
    let out = zreap_run(&["--init", "--", "/nonexistent/cmd"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
}

#[test]
fn init_reaps_orphaned_grandchildren() {
    require_shim("init_reaps_orphaned_grandchildren");
    // sh orphans two children (they become zreap's) and exits once both are
    // zombies: zreap reaps them before it exits.
    let script = "for i in 1 2; do (sh -c 'echo $$' &); done > /tmp/zreap-orphans-$$; \
                  while [ $(wc -l < /tmp/zreap-orphans-$$) -lt 2 ]; do sleep 0.01; done; \
                  for p in $(cat /tmp/zreap-orphans-$$); do echo $p; \
                  while [ -e /proc/$p ] && [ \"$(cut -d' ' -f3 /proc/$p/stat)\" != Z ]; do sleep 0.01; done; done; \
                  rm /tmp/zreap-orphans-$$; exit 3";
    let out = zreap_run(&["--init", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 2, "{out:?}");
    let left: Vec<i32> =
        pids.iter().copied().filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists()).collect();
    // Anything left would have been reparented to this test (a subreaper).
    reap_pids(&left);
    assert!(left.is_empty(), "the orphans were not reaped by zreap: {left:?}");
}

/// Starts `zreap run --init [extra] -- sh -c SCRIPT` where SCRIPT prints a
/// line once it runs; sends `sig` to zreap; returns zreap's exit code and the
/// lines the script printed.
fn forward(extra: &[&str], script: &str, sig: i32) -> (Option<i32>, Vec<String>) {
    become_subreaper();
    let mut child = Command::new(zreap())
        .args(["run", "--init"])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut line = String::new();
    use std::io::BufRead;
    while reader.read_line(&mut line).unwrap() > 0 {
        let l = line.trim().to_string();
        line.clear();
        let done = l == "started";
        lines.push(l);
        if done {
            break;
        }
    }
    // SAFETY: signal our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "zreap did not exit after signal {sig}");
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), lines)
}

#[test]
fn init_forwards_signals() {
    require_shim("init_forwards_signals");
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2] {
        let (code, _) = forward(&[], "echo started; exec sleep 30", sig);
        assert_eq!(code, Some(128 + sig), "signal {sig}");
    }
    // SIGWINCH is forwarded too; a trap shows it arrived.
    let (code, _) = forward(&[], "trap 'exit 42' WINCH; echo started; while :; do sleep 0.05; done", libc::SIGWINCH);
    assert_eq!(code, Some(42));
}

#[test]
fn init_forwards_to_the_process_group() {
    require_shim("init_forwards_to_the_process_group");
    // With -g the background sleep (same group as sh) gets SIGTERM too.
    let (code, lines) = forward(&["-g"], "sleep 30 & echo $!; echo started; wait", libc::SIGTERM);
    assert_eq!(code, Some(143), "{lines:?}");
    let sleeper: i32 = lines[0].parse().unwrap();
    // It dies of the signal; zreap exits as soon as sh is gone, so the
    // sleeper's zombie may come to this test (a subreaper) instead.
    let deadline = Instant::now() + LIMIT;
    while common::state_ppid(sleeper).is_some_and(|(state, _)| state != 'Z') {
        assert!(Instant::now() < deadline, "the group member was not signalled");
        std::thread::sleep(Duration::from_millis(20));
    }
    reap_pids(&[sleeper]);
}

#[test]
fn pid_1_acts_as_init_without_the_flag() {
    require_shim("pid_1_acts_as_init_without_the_flag");
    // unshare forks zreap as PID 1 of a new pid namespace. As init, zreap
    // spawns sh (pid 2, parent 1) instead of exec'ing it, reaps the orphan and
    // exits with sh's status.
    let out = run_with_deadline(
        Command::new("unshare").args(["--pid", "--fork", "--"]).arg(zreap()).args([
            "run",
            "--",
            "sh",
            "-c",
            "echo $$ $PPID; sleep 0.1 & exit 4",
        ]),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(4) && stdout.is_empty() {
        println!("note: PID 1 test skipped: unshare --pid failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        return;
    }
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(stdout.trim().split(' ').nth(1), Some("1"), "sh is zreap's child, zreap is PID 1");
}
