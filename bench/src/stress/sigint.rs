//! `sigint`: Ctrl+C to a whole process group, round after round. A parent
//! using zreap (random install flags) starts children in its own process
//! group: some die of SIGINT, some ignore it and exit later, some fork a
//! grandchild and exit. Then SIGINT goes to the group (killpg), at a random
//! moment: sometimes before the parent is ready. In `handle` rounds the parent
//! catches SIGINT, must collect every child with the right status and leave
//! no zombie; in `die` rounds it dies of SIGINT. Either way this process, a
//! subreaper, reaps what was orphaned: nothing may remain of the group.

use crate::util::{self, child_argv, status_str, Expect, Res, Rng, Violations};
use crate::zr;
use libc::{c_int, pid_t};
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

pub const CASES: &[&str] = &["killpg"];

/// A child that waits for SIGINT lives this long at most (one that missed
/// the signal, made while it was on its way, then exits 0).
const WAIT_FOR_INT_USEC: u64 = 3_000_000;
/// Exit code of grandchildren.
const GRANDCHILD: i32 = 5;

pub fn worker(case: &str, rounds: u64, seed: u64) -> Res<String> {
    if case != "killpg" {
        return Err(format!("unknown case {case}"));
    }
    util::become_subreaper()?;
    let mut rng = Rng::new(seed);
    let mut v = Violations::default();
    let errlog = std::env::temp_dir().join(format!("zreap-stress-sigint-{}.err", std::process::id()));
    let (mut handled, mut died, mut early, mut orphans, mut late) = (0u64, 0u64, 0u64, 0usize, 0u64);
    let started = Instant::now();
    for round in 0..rounds {
        let handle = rng.chance(50);
        let flags = [0, zr::OWN, zr::NO_HANDLER, zr::SUBREAPER, zr::OWN | zr::NO_HANDLER][rng.below(5) as usize];
        let mut err = std::fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&errlog)
            .map_err(|e| format!("{}: {e}", errlog.display()))?;
        let mut parent = Command::new(util::self_exe().to_str().unwrap_or("/proc/self/exe"))
            .args(["__helper", "sigint-parent", if handle { "handle" } else { "die" }])
            .arg(flags.to_string())
            .arg(rng.next().to_string())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err.try_clone().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("start the parent: {e}"))?;
        let pgid = parent.id() as pid_t;
        let before_ready = rng.chance(25);
        let mut ready = false;
        if before_ready {
            early += 1;
            util::sleep_raw(rng.below(3_000));
        } else {
            let fd = parent.stdout.as_ref().expect("piped").as_raw_fd();
            ready = util::read_line(fd, Duration::from_secs(20)).as_deref() == Some("ready");
            if !ready {
                v.add(format!("round {round}: the parent never said ready"));
            }
        }
        // SAFETY: kill with a process group we created.
        unsafe { libc::kill(-pgid, libc::SIGINT) };

        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match parent.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = parent.kill();
                    let _ = parent.wait();
                    break None;
                }
            }
        };
        let mut parent_err = String::new();
        let _ = err.rewind();
        let _ = err.read_to_string(&mut parent_err);
        let by_sigint = status.and_then(|s| s.signal()) == Some(libc::SIGINT);
        let exit0 = status.is_some_and(|s| s.success());
        let ok = match (handle, ready) {
            (true, true) => exit0,
            // Before its handler existed, SIGINT's default action applied.
            (true, false) => exit0 || by_sigint,
            (false, _) => by_sigint,
        };
        if exit0 {
            handled += 1;
        } else if by_sigint {
            died += 1;
        }
        if !ok {
            v.add(format!(
                "round {round} ({} mode, flags {flags:#x}, {}): the parent ended with {status:?}: {}",
                if handle { "handle" } else { "die" },
                if ready { "after ready" } else { "early" },
                parent_err.trim()
            ));
        }
        // Orphans come to us; the group must empty.
        let deadline = Instant::now() + Duration::from_secs(10);
        let t = Instant::now();
        loop {
            while let Ok(Some(_)) = util::waitpid(-1, true) {
                orphans += 1;
            }
            // SAFETY: signal 0 only checks for existence.
            let group_gone = unsafe { libc::kill(-pgid, 0) } == -1;
            if group_gone && util::children_of(util::my_pid()).is_empty() {
                break;
            }
            if Instant::now() > deadline {
                v.add(format!("round {round}: processes of the group still there after 10 s"));
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                util::reap_orphans(Duration::from_secs(5));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if t.elapsed() > Duration::from_secs(1) {
            late += 1;
        }
    }
    let _ = std::fs::remove_file(&errlog);
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    v.finish(format!(
        "{rounds} Ctrl+C rounds in {:.1} s ({early} before the parent was ready): parent collected all and exited 0 \
         in {handled}, died of SIGINT in {died}; {orphans} orphans reaped here, {late} rounds with a survivor that \
         missed the SIGINT (ended on its own); nothing left; seed {seed}",
        started.elapsed().as_secs_f64()
    ))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: c_int) {
    INTERRUPTED.store(true, SeqCst);
}

#[derive(Clone, Copy)]
enum Kind {
    /// Waits for SIGINT (default action).
    Dies,
    /// Ignores SIGINT, exits with a code after a short while.
    Ignores(i32, u64),
    /// Forks a grandchild that ignores SIGINT, exits 0 at once.
    Forks(u64),
}

/// `__helper sigint-parent MODE FLAGS SEED`.
pub fn parent(args: &[String]) -> i32 {
    match run_parent(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn run_parent(args: &[String]) -> Res<()> {
    let handle = args.first().map(String::as_str) == Some("handle");
    let flags: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut rng = Rng::new(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1));
    if handle {
        // SAFETY: installs a handler that only stores to an atomic.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigint as extern "C" fn(c_int) as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigaction(libc::SIGINT, &act, std::ptr::null_mut());
        }
    }
    zr::install(flags).map_err(|e| format!("install({flags:#x}): {}", util::errno_name(e)))?;
    let own = flags & zr::OWN != 0;
    let exe = util::self_exe();
    let mut expected: HashMap<pid_t, Expect> = HashMap::new();
    for _ in 0..2 + rng.below(5) {
        if INTERRUPTED.load(SeqCst) {
            break;
        }
        let kind = match rng.below(3) {
            0 => Kind::Dies,
            1 => Kind::Ignores(1 + rng.below(100) as i32, rng.below(30_000)),
            _ => Kind::Forks(rng.below(30_000)),
        };
        let method = rng.below(if own { 2 } else { 3 });
        let (pid, expect) = match (method, kind) {
            (0, Kind::Dies) => {
                let pid = zr::spawn(&child_argv(&exe, 0, WAIT_FOR_INT_USEC, false), 0, None)
                    .map_err(|e| format!("zspawn: {}", util::errno_name(e)))?;
                (pid, Expect::Signal(libc::SIGINT))
            }
            _ => {
                // SIGINT stays blocked until the child has set its disposition.
                let old = block_sigint();
                let pid = if method == 2 {
                    // SAFETY: the child runs start_kind only (raw system calls).
                    match unsafe { libc::fork() } {
                        -1 => Err(util::errno()),
                        pid => Ok(pid),
                    }
                } else {
                    // SAFETY: as above.
                    unsafe { zr::fork() }
                };
                if pid != Ok(0) {
                    restore_mask(&old);
                }
                match pid {
                    Err(e) => return Err(format!("fork: {}", util::errno_name(e))),
                    Ok(0) => start_kind(kind),
                    Ok(pid) => (pid, expect_of(kind)),
                }
            }
        };
        expected.insert(pid, expect);
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    if !handle {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    while !INTERRUPTED.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Ctrl+C once more from here: children made while the first one was on
    // its way missed it.
    // SAFETY: our own process group; our handler only sets a flag.
    unsafe { libc::kill(0, libc::SIGINT) };
    let mut problems = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match zr::wait(-1, false) {
            Ok(Some((pid, status))) => match expected.remove(&pid) {
                Some(e) if e.matches(status) => {}
                Some(e) => problems.push(format!("child {pid}: {} instead of {e:?}", status_str(status))),
                // An adopted grandchild (SUBREAPER).
                None if flags & zr::SUBREAPER != 0 && Expect::Code(GRANDCHILD).matches(status) => {}
                None => problems.push(format!("zwait(-1) gave unknown pid {pid} ({})", status_str(status))),
            },
            Ok(None) => problems.push("blocking zwait(-1) returned nothing".into()),
            Err(libc::ECHILD) => break,
            Err(e) => {
                problems.push(format!("zwait(-1): {}", util::errno_name(e)));
                break;
            }
        }
        if Instant::now() > deadline {
            problems.push("collecting took more than 10 s".into());
            break;
        }
    }
    if !expected.is_empty() {
        problems.push(format!("never collected: {expected:?}"));
    }
    if let Err(e) = util::no_children_left() {
        problems.push(e);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("flags {flags:#x}: {}", problems.join("; ")))
    }
}

fn expect_of(kind: Kind) -> Expect {
    match kind {
        Kind::Dies => Expect::Signal(libc::SIGINT),
        Kind::Ignores(code, _) => Expect::Code(code),
        Kind::Forks(_) => Expect::Code(0),
    }
}

fn block_sigint() -> libc::sigset_t {
    // SAFETY: valid sigsets; pthread_sigmask changes this thread's mask only.
    unsafe {
        let (mut set, mut old): (libc::sigset_t, libc::sigset_t) = (std::mem::zeroed(), std::mem::zeroed());
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: a mask saved by block_sigint.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// In a forked child, SIGINT blocked (child_body unblocks it once the
/// disposition is set; the intermediate of `Forks` exits 0 with it blocked).
/// Async-signal-safe.
fn start_kind(kind: Kind) -> ! {
    match kind {
        Kind::Dies => util::child_body(0, WAIT_FOR_INT_USEC, false),
        Kind::Ignores(code, usec) => util::child_body(code, usec, true),
        Kind::Forks(usec) => {
            // SAFETY: fork in a forked child; the grandchild only runs child_body.
            if unsafe { libc::fork() } == 0 {
                util::child_body(GRANDCHILD, usec, true);
            }
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(0) }
        }
    }
}
