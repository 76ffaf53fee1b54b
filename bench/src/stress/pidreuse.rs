//! `pid-reuse`: a wait for a tracked child must be answered from that
//! child's own record, never with the exit of an older process that had the
//! same pid, and per pid exits come in the order the processes were created.
//!
//! `wrap` (no root): the server pattern of the README's one-line fix,
//! `install(0)`, plain fork() children never reaped by the program (their
//! exits fill the untracked buffer), and tracked zfork/zspawn children waited
//! with zwait(pid), while the pid counter wraps. `ns-*` (root): in a new pid
//! namespace, /proc/sys/kernel/ns_last_pid forces a new child onto the pid of
//! an exit the library holds (the CRIU technique), every time.

use crate::util::{self, child_argv, status_str, Res, Rng, Violations};
use crate::zr;
use libc::{c_int, pid_t};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

pub const CASES: &[&str] = &["wrap", "ns-untracked", "ns-tracked-all", "ns-tracked-own"];

/// Exit codes: plain (untracked) children, tracked children.
const PLAIN: i32 = 7;
const TRACKED: i32 = 42;

pub fn worker(case: &str, size: u64, seed: u64) -> Res<String> {
    match case {
        "wrap" => wrap(size, seed),
        "ns-untracked" | "ns-tracked-all" | "ns-tracked-own" => in_new_pid_namespace(case, size),
        _ => Err(format!("unknown case {case}")),
    }
}

/// A tracked child that exits TRACKED: zspawn'ed (`spawn`, never held) or
/// zfork'ed; with `hold` (a pipe) only once the parent has closed the write
/// end, so it is surely running while we look.
fn start_tracked(spawn: bool, hold: Option<(c_int, c_int)>, exe: &std::ffi::CString) -> Result<pid_t, String> {
    if spawn {
        return zr::spawn(&child_argv(exe, TRACKED, 0, false), 0, None)
            .map_err(|e| format!("zspawn: {}", util::errno_name(e)));
    }
    // SAFETY: the child only makes raw system calls, then _exit.
    match unsafe { zr::fork() } {
        Ok(0) => {
            if let Some((fd, write_end)) = hold {
                close(write_end);
                let mut byte = 0u8;
                // SAFETY: blocking read of one byte into a stack buffer; EOF ends it.
                while unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) } != 0 {}
            }
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(TRACKED) }
        }
        Ok(pid) => Ok(pid),
        Err(e) => Err(format!("zfork: {}", util::errno_name(e))),
    }
}

/// A plain fork() child that exits PLAIN at once; never waited for here.
fn start_plain() -> Result<pid_t, String> {
    // SAFETY: the child only calls _exit.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", util::errno_name(util::errno()))),
        // SAFETY: _exit is async-signal-safe.
        0 => unsafe { libc::_exit(PLAIN) },
        pid => Ok(pid),
    }
}

fn pipe() -> Result<(c_int, c_int), String> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    Ok((fds[0], fds[1]))
}

fn close(fd: c_int) {
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
}

fn is_plain_exit(status: c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == PLAIN
}

fn is_tracked_exit(r: &Result<Option<(pid_t, c_int)>, i32>, pid: pid_t) -> bool {
    matches!(r, Ok(Some((p, s))) if *p == pid && libc::WIFEXITED(*s) && libc::WEXITSTATUS(*s) == TRACKED)
}

fn show(r: &Result<Option<(pid_t, c_int)>, i32>) -> String {
    match r {
        Ok(Some((p, s))) => format!("pid {p} {}", status_str(*s)),
        Ok(None) => "not yet".into(),
        Err(e) => util::errno_name(*e),
    }
}

fn pid_max() -> pid_t {
    std::fs::read_to_string("/proc/sys/kernel/pid_max").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(32768)
}

/// No root: run until the pid counter has come all the way around (plain
/// exits from the whole pid range then wait in the buffer), then for
/// `thousands` × 1000 more tracked children.
fn wrap(thousands: u64, seed: u64) -> Res<String> {
    zr::install(0).map_err(|e| format!("install(0): {}", util::errno_name(e)))?;
    util::watchdog("pid-reuse", Duration::from_secs(30));
    let exe = util::self_exe();
    let mut rng = Rng::new(seed);
    let pid_max = pid_max();
    let started = Instant::now();
    // The last UNTRACKED_CAPACITY plain pids: their exits sit in the buffer.
    let mut plain: VecDeque<pid_t> = VecDeque::new();
    let mut plain_count: HashMap<pid_t, u32> = HashMap::new();
    let mut every_plain: HashSet<pid_t> = HashSet::new();
    let (mut first_pid, mut last_pid, mut seen_wraps, mut cycled) = (0, 0, 0u64, false);
    let (mut tracked, mut held, mut collisions, mut plains) = (0u64, 0u64, 0u64, 0u64);
    let (mut wrong, mut wrong_held, mut wrong_in_collisions, mut after_wrap) = (0u64, 0u64, 0u64, 0u64);
    let mut v = Violations::default();
    while after_wrap < thousands * 1000 {
        util::progress();
        if !cycled && started.elapsed() > Duration::from_secs(900) {
            v.add(format!("the pid counter did not come around in {:?}", started.elapsed()));
            break;
        }
        // About one plain child for eight tracked ones: a wrap's worth of plain
        // exits fits the UNTRACKED_CAPACITY the buffer keeps.
        let pid = if rng.below(9) == 0 {
            let pid = start_plain()?;
            plains += 1;
            plain.push_back(pid);
            *plain_count.entry(pid).or_default() += 1;
            every_plain.insert(pid);
            if plain.len() > zreap::UNTRACKED_CAPACITY {
                let old = plain.pop_front().expect("non-empty");
                if let Some(c) = plain_count.get_mut(&old) {
                    *c -= 1;
                    if *c == 0 {
                        plain_count.remove(&old);
                    }
                }
            }
            pid
        } else {
            let spawn = rng.below(16) == 0;
            let hold = !spawn && rng.below(8) == 0;
            let pipe = if hold { Some(pipe()?) } else { None };
            let pid = start_tracked(spawn, pipe, &exe)?;
            tracked += 1;
            if cycled {
                after_wrap += 1;
            }
            let collides = plain_count.contains_key(&pid);
            collisions += u64::from(collides);
            let mut bad = false;
            if let Some((r, w)) = pipe {
                close(r);
                held += 1;
                let early = zr::wait(pid, true);
                if !matches!(early, Ok(None)) {
                    wrong_held += 1;
                    bad = true;
                    v.add(format!(
                        "zwait({pid}, WNOHANG) on a running tracked child: {} instead of not yet{}",
                        show(&early),
                        if collides { " (an undelivered plain exit had this pid)" } else { "" }
                    ));
                }
                close(w);
            }
            let r = zr::wait(pid, false);
            if !is_tracked_exit(&r, pid) {
                wrong += 1;
                bad = true;
                v.add(format!(
                    "zwait({pid}): {} instead of exit {TRACKED}{}",
                    show(&r),
                    if collides { " (an undelivered plain exit had this pid)" } else { "" }
                ));
            }
            wrong_in_collisions += u64::from(bad && collides);
            pid
        };
        if pid < last_pid && last_pid - pid > pid_max / 2 {
            seen_wraps += 1;
        }
        if first_pid == 0 {
            first_pid = pid;
        }
        cycled |= seen_wraps > 0 && pid >= first_pid;
        last_pid = pid;
    }
    let exits = zr::reap_all().map_err(|e| format!("reap_all: {}", util::errno_name(e)))?;
    // What is left to deliver: plain children's exits, nothing else, and
    // with those the buffer dropped, one for each plain child. Which ones
    // were dropped follows the order the exits were reaped in, which for
    // exits pending at once need not be the order of the forks.
    for (pid, status) in exits.iter().filter(|(pid, s)| !every_plain.contains(pid) || !is_plain_exit(*s)).take(5) {
        v.add(format!("reap_all delivered pid {pid} ({}), no plain child's exit", status_str(*status)));
    }
    let dropped = zr::stats().dropped;
    if exits.len() as u64 + dropped != plains {
        v.add(format!("{} plain exits delivered and {dropped} dropped, for {plains} plain children", exits.len()));
    }
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    let stats = zr::stats();
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    v.finish(format!(
        "{seen_wraps} wraps of pid_max {pid_max} in {:.1} s: {plains} plain children never waited, {tracked} tracked \
         ({held} held running for a WNOHANG look), {collisions} tracked pids equal to an undelivered plain exit's; \
         wrong zwait results: {wrong} ({:.2}% of {after_wrap} once the counter had come around), WNOHANG wrong: {wrong_held} \
         ({:.2}% of held), {wrong_in_collisions} of the wrong ones on a colliding pid; stats {stats:?}; seed {seed}",
        started.elapsed().as_secs_f64(),
        pct(wrong, after_wrap),
        pct(wrong_held, held),
    ))
}

/// Root: runs the case as pid 1 of a new pid namespace, where
/// /proc/sys/kernel/ns_last_pid picks the next pid.
fn in_new_pid_namespace(case: &str, reps: u64) -> Res<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(format!("skipped: {case} needs root (a new pid namespace and ns_last_pid)"));
    }
    // SAFETY: unshare only changes the pid namespace of our future children.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } == -1 {
        return Ok(format!("skipped: unshare(CLONE_NEWPID): {}", std::io::Error::last_os_error()));
    }
    let flush = || {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    };
    flush();
    // SAFETY: this worker is single-threaded here (nothing has started a
    // thread yet), so the child may do anything.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            // The namespace (and all in it) ends with this worker.
            // SAFETY: plain prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
            let result = ns_case(case, reps);
            let code = match &result {
                Ok(s) => {
                    println!("{s}");
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            };
            flush();
            // SAFETY: ends the namespace's init; no destructors needed.
            unsafe { libc::_exit(code) }
        }
        pid => match util::waitpid(pid, false) {
            // The child printed its own summary or violations.
            Ok(Some((_, status))) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 => std::process::exit(0),
            Ok(Some((_, status))) if libc::WIFEXITED(status) => std::process::exit(libc::WEXITSTATUS(status)),
            other => Err(format!("namespace init ended with {other:?}")),
        },
    }
}

/// Makes the next pid of this pid namespace `pid`.
fn force_next_pid(pid: pid_t) -> Res<()> {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).map_err(|e| format!("write ns_last_pid: {e}"))
}

/// Waits until the library has reaped `count` children in all.
fn wait_reaped(count: u64) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while zr::stats().reaped < count {
        if Instant::now() > deadline {
            return Err(format!("the library did not reap within 10 s: {:?}", zr::stats()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

fn ns_case(case: &str, reps: u64) -> Res<String> {
    util::watchdog("pid-reuse", Duration::from_secs(30));
    let exe = util::self_exe();
    let flags = if case == "ns-tracked-own" { zr::OWN } else { 0 };
    zr::install(flags).map_err(|e| format!("install({flags:#x}): {}", util::errno_name(e)))?;
    let mut v = Violations::default();
    let (mut runs, mut not_forced, mut wrong) = (0u64, 0u64, 0u64);
    // 20 forced reuses per unit of size.
    for i in 0..reps * 20 {
        util::progress();
        let reaped = zr::stats().reaped;
        // The older process: a plain child (its exit goes to the untracked
        // buffer) or a tracked one exiting PLAIN (reaped, not yet delivered).
        let old = if case == "ns-untracked" {
            start_plain()?
        } else {
            // SAFETY: the child only calls _exit.
            match unsafe { zr::fork() } {
                // SAFETY: _exit is async-signal-safe.
                Ok(0) => unsafe { libc::_exit(PLAIN) },
                Ok(pid) => pid,
                Err(e) => return Err(format!("zfork: {}", util::errno_name(e))),
            }
        };
        wait_reaped(reaped + 1)?;
        force_next_pid(old)?;
        let hold = i % 2 == 1;
        let pipe = if hold { Some(pipe()?) } else { None };
        let spawn = !hold && i % 4 == 0;
        let new = start_tracked(spawn, pipe, &exe)?;
        if let Some((r, _)) = pipe {
            close(r);
        }
        runs += 1;
        if new != old {
            not_forced += 1;
            if let Some((_, w)) = pipe {
                close(w);
            }
            let _ = zr::wait(new, false);
            let _ = zr::reap_all();
            continue;
        }
        let mut bad = Vec::new();
        if case == "ns-untracked" {
            if let Some((_, w)) = pipe {
                let early = zr::wait(new, true);
                if !matches!(early, Ok(None)) {
                    bad.push(format!("zwait(pid, WNOHANG) on the running tracked child: {}", show(&early)));
                }
                close(w);
            }
            let r = zr::wait(new, false);
            if !is_tracked_exit(&r, new) {
                bad.push(format!("zwait(pid): {} instead of exit {TRACKED}", show(&r)));
            }
        } else {
            // Per pid, exits come in creation order: first the old one's.
            let first = zr::wait(new, true);
            if !matches!(first, Ok(Some((p, s))) if p == old && libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == PLAIN) {
                bad.push(format!(
                    "first zwait(pid, WNOHANG): {} instead of the older child's exit {PLAIN}",
                    show(&first)
                ));
            }
            if let Some((_, w)) = pipe {
                let early = zr::wait(new, true);
                if !matches!(early, Ok(None)) {
                    bad.push(format!("second zwait(pid, WNOHANG) with the new child running: {}", show(&early)));
                }
                close(w);
            }
            let r = zr::wait(new, false);
            if !is_tracked_exit(&r, new) {
                bad.push(format!("zwait(pid): {} instead of the new child's exit {TRACKED}", show(&r)));
            }
        }
        let rest = zr::reap_all().map_err(|e| format!("reap_all: {}", util::errno_name(e)))?;
        let stray: Vec<String> =
            rest.iter().filter(|(p, _)| *p == new).map(|(p, s)| format!("pid {p} {}", status_str(*s))).collect();
        if case != "ns-untracked" && !stray.is_empty() {
            bad.push(format!("reap_all then delivered {stray:?}"));
        }
        if !bad.is_empty() {
            wrong += 1;
            v.add(format!("reuse #{i} of pid {old} ({}): {}", if hold { "held" } else { "not held" }, bad.join("; ")));
        }
    }
    let _ = zr::reap_all();
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    if zr::stats().tracked != 0 {
        v.add(format!("stats.tracked is {} with every tracked child waited for", zr::stats().tracked));
    }
    let forced = runs - not_forced;
    let pct = if forced == 0 { 0.0 } else { 100.0 * wrong as f64 / forced as f64 };
    v.finish(format!(
        "{case}: {runs} forced pid reuses in a new pid namespace ({not_forced} missed the pid), {wrong} answered wrong \
         ({pct:.1}%); stats {:?}",
        zr::stats()
    ))
}
