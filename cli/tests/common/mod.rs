//! Shared by the CLI tests: the zreap binary, C helper compilation, running
//! with a deadline, /proc walking and cleanup.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The built `zreap` binary.
pub fn zreap() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zreap"))
}

/// The directory of the zreap binary (`target/debug`): where the shim is looked for.
pub fn bin_dir() -> PathBuf {
    zreap().parent().unwrap().to_path_buf()
}

/// The preload shim next to the binary, if the workspace built it.
pub fn shim() -> Option<PathBuf> {
    let p = bin_dir().join("libzreap_preload.so");
    p.is_file().then_some(p)
}

/// Fails the test when the shim is missing: the README's test command builds
/// the workspace first (`cargo test` alone does not build a cdylib).
pub fn require_shim(test: &str) {
    assert!(
        shim().is_some(),
        "{test}: libzreap_preload.so is not in {}: build the workspace first (cargo build --workspace)",
        bin_dir().display()
    );
}

/// Compiles `cli/helpers/NAME.c` into `target/<profile>/cli-helpers/NAME`,
/// unless the executable is newer than the source and `common.h`.
pub fn build_helper(name: &str) -> PathBuf {
    let helpers = Path::new(env!("CARGO_MANIFEST_DIR")).join("helpers");
    let src = helpers.join(format!("{name}.c"));
    let out_dir = bin_dir().join("cli-helpers");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(name);
    let newest = [src.clone(), helpers.join("common.h")]
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
        .unwrap();
    if std::fs::metadata(&out).and_then(|m| m.modified()).is_ok_and(|t| t >= newest) {
        return out;
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(cc)
        .args(["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg(&src)
        .arg("-o")
        .arg(&tmp)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {} failed", src.display());
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Makes this test process a child subreaper (once), so whatever the helpers
/// orphan is reparented here and can be reaped (PID 1 here does not reap).
pub fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
        assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());
    });
}

/// Runs `cmd` to completion with a deadline (generous; panics past it).
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads one line of `out` within `limit`, then drains the rest in the background.
pub fn first_line(out: ChildStdout, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let ok = matches!(reader.read_line(&mut line), Ok(n) if n > 0);
        let _ = tx.send(ok.then_some(line));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(limit).ok().flatten()
}

/// (state, ppid) of a process, from the last ')' of its stat line.
pub fn state_ppid(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    Some((f.next()?.chars().next()?, f.next()?.parse().ok()?))
}

/// Every descendant of `root` (not `root` itself), parents before children.
pub fn descendants(root: i32) -> Vec<i32> {
    let procs: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|pid| Some((pid, state_ppid(pid)?.1)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &procs {
            if ppid == p && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

/// Reaps the given pids within a deadline. They come to this process (a
/// subreaper) when their parent dies, which for a multi-threaded parent may
/// happen after the helper was reaped: a pid that is not (yet) our child is
/// retried while it exists. At the deadline, children of ours still running
/// are SIGKILLed and reaped.
pub fn reap_pids(pids: &[i32]) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() {
        left.retain(|&pid| {
            let mut st = 0;
            // SAFETY: waitpid on one pid with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            match r {
                0 => true,                      // our child, still running
                r if r > 0 => false,            // reaped
                _ => state_ppid(pid).is_some(), // not ours (yet): keep while it exists
            }
        });
        if Instant::now() > deadline {
            for &pid in &left {
                if state_ppid(pid).map(|(_, p)| p) == Some(me) {
                    // SAFETY: kill and a blocking wait on our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                }
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running helper program. Dropping it kills it and its whole tree and
/// reaps everything, also when the test panics.
pub struct Helper {
    pub child: Child,
    pub line: Option<String>,
}

impl Helper {
    /// Starts the compiled helper `name` and reads its first line.
    pub fn start(name: &str) -> Helper {
        become_subreaper();
        let exe = build_helper(name);
        let mut child = Command::new(&exe)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let line = first_line(child.stdout.take().unwrap(), Duration::from_secs(30));
        Helper { child, line }
    }

    /// The pid in the `ready PID` line.
    pub fn ready_pid(&self) -> i32 {
        self.line
            .as_deref()
            .and_then(|l| l.trim().strip_prefix("ready "))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("expected `ready PID`, got {:?}", self.line))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let root = self.child.id() as i32;
        let tree = descendants(root);
        for &pid in tree.iter().rev() {
            // SAFETY: kill with a pid we just saw in the helper's tree.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        reap_pids(&tree);
    }
}
