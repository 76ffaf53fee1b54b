//! The C examples a programmer reaches for, built and run: the plain poll()
//! loop, the libuv loop with zspawn'ed children, and the pre-fork worker pool
//! (restarts with exit status, workers die with the master).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zreap_testsupport::{self as support, become_subreaper};

const LIMIT: Duration = Duration::from_secs(60);

fn run_ok(exe: &std::path::Path, args: &[&str]) -> String {
    let out = support::run_with_deadline(Command::new(exe).args(args), LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}: {:?}\n{stdout}\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn poll_loop_reaps_plain_fork_children() {
    let stdout = run_ok(&support::build_c("examples/poll_loop.c"), &["20"]);
    assert!(stdout.ends_with("all 20 children reaped\n"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("child ")).count(), 20, "{stdout}");
}

#[test]
fn libuv_loop_reaps_zspawn_children() {
    let lib_dir = support::profile_dir();
    let dir = std::env::temp_dir().join(format!("zreap-libuv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("libuv_children");
    let uv = support::run_with_deadline(Command::new("pkg-config").args(["--cflags", "--libs", "libuv"]), LIMIT);
    assert!(uv.status.success(), "pkg-config libuv (scripts/setup.sh installs libuv1-dev)");
    let out = support::run_with_deadline(
        Command::new(support::c_compiler())
            .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(support::repo().join("include"))
            .arg(support::repo().join("examples/libuv_children.c"))
            .arg("-o")
            .arg(&exe)
            .args(String::from_utf8_lossy(&uv.stdout).split_whitespace())
            .arg(format!("-L{}", lib_dir.display()))
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
            .arg("-lzreap"),
        LIMIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = run_ok(&exe, &["8"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stdout.ends_with("all 8 children reaped\n"), "{stdout}");
    for code in 0..8 {
        assert!(stdout.contains(&format!(" exited {code}\n")), "no exit {code}: {stdout}");
    }
}

/// The pool's output lines, read by a thread.
fn lines_of(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn echo(port: u16, text: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(text.as_bytes()).unwrap();
    let mut back = String::new();
    stream.read_to_string(&mut back).unwrap();
    assert_eq!(back, text);
}

/// Kills a child and its whole tree when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        support::kill_tree(&mut self.0);
    }
}

#[test]
fn prefork_pool_restarts_workers_and_they_die_with_the_master() {
    become_subreaper();
    let exe: PathBuf = support::build_c("examples/prefork.c");
    let mut master = KillOnDrop(
        Command::new(&exe).args(["0", "3", "2"]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap(),
    );
    let master_pid = master.0.id() as i32;
    let lines = lines_of(master.0.stdout.take().unwrap());
    let first = lines.recv_timeout(LIMIT).expect("listening line");
    let port: u16 = first.strip_prefix("listening on ").and_then(|p| p.parse().ok()).expect(&first);

    // Three workers of two connections each: seven connections end at least two.
    for i in 0..7 {
        echo(port, &format!("hello {i}\n"));
    }
    let deadline = Instant::now() + LIMIT;
    let mut restarts = 0;
    while restarts < 2 {
        let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("restart lines");
        assert!(line.ends_with("exited with status 2; restarting"), "{line}");
        restarts += 1;
    }
    // The restarted worker is forked right after its line: wait for all three.
    let mut workers = support::children_of(master_pid);
    while workers.len() != 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        workers = support::children_of(master_pid);
    }
    assert_eq!(workers.len(), 3, "workers: {workers:?}");

    // SIGTERM ends the master; pdeathsig ends every worker with it.
    // SAFETY: plain kill of our own child.
    assert_eq!(unsafe { libc::kill(master_pid, libc::SIGTERM) }, 0);
    assert!(master.0.wait().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    for worker in workers {
        // Orphaned workers are reparented to this subreaper: reap each one.
        let mut status = 0;
        loop {
            // SAFETY: waitpid with a valid out pointer.
            let rc = unsafe { libc::waitpid(worker, &mut status, libc::WNOHANG) };
            if rc == worker || (rc == -1 && support::proc_state_ppid(worker).is_none()) {
                break;
            }
            assert!(Instant::now() < deadline, "worker {worker} outlived the master");
            std::thread::sleep(Duration::from_millis(20));
        }
        if libc::WIFSIGNALED(status) {
            assert_eq!(libc::WTERMSIG(status), libc::SIGKILL, "worker {worker}");
        }
    }
}
