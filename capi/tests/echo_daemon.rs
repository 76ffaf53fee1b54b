//! `examples/echo_daemon.c`: the zreap echo server run as a daemon with a
//! pidfile and readiness.
//!
//! The test process makes itself a child subreaper, so each daemon (whose
//! launcher exits) is reparented here instead of to init: the test can
//! `waitpid()` it and see how it exited, and kills whatever is left if a check
//! fails. The two tests take one lock, because the second one reaps a daemon
//! whose pid it was never told (found by name among our children).

use zreap_testsupport as support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{build_c, children_of, proc_state_ppid, run_with_deadline, zombies_of};

const SRC: &str = "examples/echo_daemon.c";
const DEADLINE: Duration = Duration::from_secs(20);

static SERIAL: Mutex<()> = Mutex::new(());

fn my_pid() -> i32 {
    std::process::id() as i32
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh temporary directory for the pidfile.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zreap-echo-daemon-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// Our children that run (or ran: zombies) the echo daemon.
fn daemons_of_ours() -> Vec<i32> {
    children_of(my_pid()).into_iter().filter(|&p| comm(p) == "echo_daemon").collect()
}

/// waitpid() on one pid, giving up (and SIGKILLing it) after `limit`.
/// Returns the wait status, or None if it was not our child.
fn wait_pid(pid: i32, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(status);
        }
        if r == -1 {
            return None;
        }
        if Instant::now() > deadline {
            // SAFETY: pid is our child (waitpid returned 0 for it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; it dies at once.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("pid {pid} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn exit_code(status: i32) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// Kills every echo daemon we adopted and the connection processes they left,
/// reaps them and removes the directory, also when a check panics.
struct Cleanup {
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in daemons_of_ours() {
            let orphans = children_of(pid);
            // SAFETY: pid is our child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = wait_pid(pid, DEADLINE);
            // The daemon's connection processes are ours now (subreaper).
            for child in orphans {
                // SAFETY: a process we adopted.
                unsafe { libc::kill(child, libc::SIGKILL) };
                let _ = wait_pid(child, DEADLINE);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the launcher to completion: (exit code, stderr).
fn launch(exe: &Path, port: u16, pidfile: &Path) -> (Option<i32>, String) {
    let out = run_with_deadline(Command::new(exe).arg(port.to_string()).arg(pidfile), DEADLINE);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn echo_once(port: u16, text: &[u8]) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to the echo daemon");
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(text).unwrap();
    let mut back = vec![0; text.len()];
    conn.read_exact(&mut back).expect("read the echo");
    assert_eq!(back, text);
}

#[test]
fn echo_daemon_starts_serves_and_stops_on_sigterm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::become_subreaper();
    let exe = build_c(SRC);
    let dir = temp_dir("serve");
    let _cleanup = Cleanup { dir: dir.clone() };
    let pidfile = dir.join("echo.pid");
    let port = free_port();

    // The launcher exits 0 once the daemon listens; the pidfile is complete by then.
    let (code, stderr) = launch(&exe, port, &pidfile);
    assert_eq!(code, Some(0), "launcher failed: {stderr}");
    assert!(stderr.is_empty(), "launcher wrote to stderr: {stderr}");
    let text = std::fs::read_to_string(&pidfile).expect("pidfile after a successful start");
    assert!(text.ends_with('\n') && text.lines().count() == 1, "pidfile holds {text:?}");
    let pid: i32 = text.trim().parse().expect("a pid in the pidfile");
    assert_eq!(proc_state_ppid(pid).map(|(_, ppid)| ppid), Some(my_pid()), "daemon {pid} is not ours");
    assert_eq!(comm(pid), "echo_daemon");

    // It serves, one process per connection, and reaps them.
    echo_once(port, b"hello zreap\n");
    echo_once(port, b"once more\n");
    let deadline = Instant::now() + DEADLINE;
    while !children_of(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(children_of(pid), Vec::<i32>::new(), "connection processes left");
    assert_eq!(zombies_of(pid), Vec::<i32>::new());

    // SIGTERM: exit(0), and the pidfile is removed.
    // SAFETY: pid is our child, the daemon.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_pid(pid, DEADLINE).expect("the daemon is our child");
    assert_eq!(exit_code(status), Some(0), "daemon wait status {status:#x}");
    assert!(!pidfile.exists(), "pidfile left after a clean stop");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after SIGTERM");
    assert_eq!(daemons_of_ours(), Vec::<i32>::new());
}

#[test]
fn echo_daemon_launcher_fails_on_a_taken_port() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::become_subreaper();
    let exe = build_c(SRC);
    let dir = temp_dir("taken");
    let _cleanup = Cleanup { dir: dir.clone() };
    let pidfile = dir.join("echo.pid");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();

    // The daemon reports EADDRINUSE through zdaemon_ready(): exit 1, one line.
    let (code, stderr) = launch(&exe, port, &pidfile);
    assert_eq!(code, Some(1), "launcher on a taken port: stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "want one line on stderr, got {stderr:?}");
    assert!(stderr.contains("Address already in use"), "stderr: {stderr:?}");

    // The daemon that failed exit()s: it comes to us, and its pidfile goes.
    let deadline = Instant::now() + DEADLINE;
    let mut failed = daemons_of_ours();
    while failed.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        failed = daemons_of_ours();
    }
    assert_eq!(failed.len(), 1, "want the one failed daemon among our children, got {failed:?}");
    let status = wait_pid(failed[0], DEADLINE).expect("the failed daemon is our child");
    assert_eq!(exit_code(status), Some(1), "failed daemon wait status {status:#x}");
    assert!(!pidfile.exists(), "a daemon that never started left its pidfile");
    drop(taken);
}
