//! CPython's own test suites for processes and signals, run with the preload
//! shim in both modes: `python3 -m test -j2 --timeout 120 SUITES` must pass
//! (a test that hangs past the timeout fails its suite).
//!
//! Needs python3 with its `test` package (scripts/setup.sh installs it).
//! Written against CPython 3.11.7, where every one of these tests passes
//! without the shim. Among them is asyncio's `PidfdChildWatcher` (Python
//! 3.12's default), which calls `pidfd_open(pid)` some time after it spawned
//! the child: under `ZREAP_REAP=all` the shim may have reaped a child that
//! exited at once by then, and answers for the zombie the child would have
//! been (see `c-tests/shim_pidfd.c`). Before it did, `pidfd_open` failed
//! with ESRCH in about one run of nine. CPython makes that call through
//! `syscall()`, which the stub interposes on x86-64 only: elsewhere the class
//! is left out under `all` ([`PIDFD_WATCHER`]).
//!
//! Cleanup: regrtest's output goes to a file (a full pipe cannot stall it);
//! at the outer deadline every process below it is killed and reaped (this
//! process is a subreaper, so its orphaned workers come here).

use zreap_testsupport as support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::become_subreaper;
use support::{descendants, profile_dir};

/// The suites: subprocess, the wait family, popen, fork, signals, and
/// asyncio's subprocess support (its SIGCHLD-driven child watchers).
const SUITES: [&str; 7] = [
    "test_subprocess",
    "test_wait3",
    "test_wait4",
    "test_popen",
    "test_fork1",
    "test_signal",
    "test_asyncio.test_subprocess",
];
/// For the whole run, beyond regrtest's own 120 s per test file.
const DEADLINE: Duration = Duration::from_secs(15 * 60);

/// asyncio's pidfd watcher tests, which need `syscall(SYS_pidfd_open)`
/// interposed under `all` (x86-64 only).
const PIDFD_WATCHER: &str = "*.SubprocessPidfdWatcherTests.*";

/// Runs the suites with `ZREAP_REAP=mode`, leaving out the tests `ignore`
/// matches; fails with regrtest's output unless it reports success.
fn suites_pass_under_the_shim(mode: &str, ignore: &[&str]) {
    let python_test = Command::new("python3").args(["-c", "import test.regrtest"]).status();
    assert!(
        python_test.is_ok_and(|s| s.success()),
        "python3 with CPython's `test` package is needed: run scripts/setup.sh"
    );
    let shim = profile_dir().join("libzreap_preload.so");
    assert!(shim.exists(), "{} is missing: run `cargo build --workspace` first", shim.display());
    become_subreaper();
    let dir = std::env::temp_dir().join(format!("zreap-cpython-{}-{mode}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("regrtest.log");
    let log = fs::File::create(&log_path).unwrap();

    let started = Instant::now();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "test", "-j2", "--timeout", "120"]);
    for pattern in ignore {
        cmd.args(["--ignore", pattern]);
    }
    cmd.args(SUITES).current_dir(&dir);
    for var in ["ZREAP_PDEATHSIG", "ZREAP_SUBREAPER", "ZREAP_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("LD_PRELOAD", &shim).env("ZREAP_REAP", mode);
    let mut child =
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("spawn python3");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            let below = descendants(child.id() as i32);
            for &pid in std::iter::once(&(child.id() as i32)).chain(&below) {
                // SAFETY: kill on pids of this test's process tree.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            child.wait().unwrap();
            for pid in below {
                let mut st = 0;
                // SAFETY: waitpid on one pid, killed above (ours: we are a subreaper).
                unsafe { libc::waitpid(pid, &mut st, 0) };
            }
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    let _ = fs::remove_dir_all(&dir);
    let elapsed = started.elapsed();
    let summary: Vec<&str> = output.lines().filter(|l| l.starts_with("Total ") || l.starts_with("Result: ")).collect();
    println!("ZREAP_REAP={mode}: {:.0?} {summary:?}", elapsed);
    match status {
        None => panic!("ZREAP_REAP={mode}: the suites did not finish within {DEADLINE:?}\n{output}"),
        Some(s) => assert!(
            s.success() && output.contains("Result: SUCCESS"),
            "ZREAP_REAP={mode}: CPython's suites failed ({s})\n{output}"
        ),
    }
}

#[test]
fn cpython_suites_pass_under_the_shim_in_handler_mode() {
    suites_pass_under_the_shim("handler", &[]);
}

#[test]
fn cpython_suites_pass_under_the_shim_in_all_mode() {
    let ignore: &[&str] = if cfg!(target_arch = "x86_64") { &[] } else { &[PIDFD_WATCHER] };
    suites_pass_under_the_shim("all", ignore);
}
