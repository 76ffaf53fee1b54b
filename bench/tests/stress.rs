//! The short versions of the stress scenarios: `zreap-stress --quick
//! SCENARIO`, one process per run (each case runs in a process of its own
//! inside it, and the stress command is a subreaper that reaps whatever a
//! case leaves), bounded by a deadline. No timing is asserted.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn quick(args: &[&str]) {
    let limit = Duration::from_secs(240);
    let mut child = Command::new(env!("CARGO_BIN_EXE_zreap-stress"))
        .arg("--quick")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zreap-stress");
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > limit {
            // SIGKILL: the stress command's own workers then get their
            // parent-death handling; its subreaping ends with it.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    let stdout = reader.join().unwrap_or_default();
    println!("{stdout}");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("zreap-stress --quick {args:?}: {s}\n{stdout}\n{err}"),
        None => panic!("zreap-stress --quick {args:?} did not finish within {limit:?}\n{stdout}\n{err}"),
    }
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
