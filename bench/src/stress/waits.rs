//! `waits`: four threads race every kind of wait for the same children:
//! blocking and non-blocking `zwait(pid)` and `zwait(-1)`, `zreap_all` (in the
//! `-fd` cases also from a thread that polls the reap fd), and `waitpid()`
//! outside the library, by pid and (outside `ZREAP_OWN`) for any child, on
//! children made by zspawn, zfork and plain fork(). Every exit must reach
//! exactly one of them, with its status; no wait may stay blocked once no
//! child it could return is left (a hang: 10 s; late: more than 5 blocking
//! calls of 500 ms or more, where every child lives at most 2 ms); at the
//! end no child, zombie or tracked slot is left.

use crate::util::{self, status_str, Res, Rng, Violations};
use crate::zr;
use libc::{c_int, pid_t};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

pub const CASES: &[&str] = &["none", "all", "own", "no-handler", "own-no-handler", "all-fd", "own-fd"];

const THREADS: usize = 4;
/// A blocking wait that has not returned after this long hangs.
const HANG: Duration = Duration::from_secs(10);
/// Blocking calls that may take 500 ms or more (a thread the scheduler left
/// aside on a loaded machine) before the case counts late wake-ups.
const SLOW_ALLOWED: u64 = 5;

/// What the threads share: who started what, who got what, who is blocked.
struct Shared {
    t0: Instant,
    own: bool,
    /// (pid, exit code) of every child started.
    started: Mutex<Vec<(pid_t, i32)>>,
    /// (pid, status, by what) of every exit delivered.
    delivered: Mutex<Vec<(pid_t, c_int, &'static str)>>,
    /// Per thread: when its blocking call began (ms since t0, plus one; 0:
    /// not blocked), and which call it is.
    blocked: [AtomicU64; THREADS],
    what: [Mutex<&'static str>; THREADS],
    violations: Mutex<Violations>,
    /// The racing threads meet here before and after each episode.
    episode: Barrier,
    /// Blocking calls that took 500 ms or more (where every child lives at
    /// most 2 ms): late wake-ups.
    slow: AtomicU64,
}

impl Shared {
    fn got(&self, pid: pid_t, status: c_int, via: &'static str) {
        self.delivered.lock().expect("not poisoned").push((pid, status, via));
    }

    fn violation(&self, what: String) {
        self.violations.lock().expect("not poisoned").add(what);
    }

    /// Runs a blocking call of thread `me`, visible to the hang monitor.
    fn blocking<T>(&self, me: usize, what: &'static str, call: impl FnOnce() -> T) -> T {
        *self.what[me].lock().expect("not poisoned") = what;
        self.blocked[me].store(self.t0.elapsed().as_millis() as u64 + 1, SeqCst);
        let began = Instant::now();
        let r = call();
        self.blocked[me].store(0, SeqCst);
        if began.elapsed() >= Duration::from_millis(500) {
            self.slow.fetch_add(1, SeqCst);
        }
        util::progress();
        r
    }
}

pub fn worker(case: &str, n: u64, seed: u64) -> Res<String> {
    let (flags, fd) = match case {
        "none" => (None, false),
        "all" => (Some(0), false),
        "own" => (Some(zr::OWN), false),
        "no-handler" => (Some(zr::NO_HANDLER), false),
        "own-no-handler" => (Some(zr::OWN | zr::NO_HANDLER), false),
        "all-fd" => (Some(0), true),
        "own-fd" => (Some(zr::OWN), true),
        _ => return Err(format!("unknown case {case}")),
    };
    if let Some(flags) = flags {
        zr::install(flags).map_err(|e| format!("install({flags:#x}): {}", util::errno_name(e)))?;
    }
    let own = flags.is_some_and(|f| f & zr::OWN != 0);
    util::watchdog("waits", Duration::from_secs(30));
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        own,
        started: Mutex::new(Vec::new()),
        delivered: Mutex::new(Vec::new()),
        blocked: [const { AtomicU64::new(0) }; THREADS],
        what: [const { Mutex::new("") }; THREADS],
        violations: Mutex::new(Violations::default()),
        episode: Barrier::new(THREADS),
        slow: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || watch_for_hangs(&shared, &stop))
    };
    let poller = fd.then(|| {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || poll_reap_fd(&shared, &stop))
    });
    let exe = util::self_exe();
    let threads: Vec<_> = (0..THREADS)
        .map(|me| {
            let (shared, exe) = (shared.clone(), exe.clone());
            let rounds = n / THREADS as u64;
            let seed = seed.wrapping_add(me as u64 * 0x9e37_79b9);
            std::thread::spawn(move || race(me, &shared, &exe, rounds, seed))
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a racing thread panicked")?;
    }
    stop.store(true, SeqCst);
    if let Some(poller) = poller {
        poller.join().map_err(|_| "the poller panicked")?;
    }
    // What is left to deliver goes to this thread.
    loop {
        match shared.blocking(0, "zwait(-1) at the end", || zr::wait(-1, false)) {
            Ok(Some((pid, status))) => shared.got(pid, status, "zwait(-1) at the end"),
            Err(libc::ECHILD) => break,
            other => {
                shared.violation(format!("zwait(-1) at the end: {other:?}"));
                break;
            }
        }
    }
    match zr::reap_all() {
        Ok(exits) => exits.into_iter().for_each(|(pid, status)| shared.got(pid, status, "reap_all at the end")),
        Err(e) => shared.violation(format!("reap_all at the end: {}", util::errno_name(e))),
    }
    stop.store(true, SeqCst);
    monitor.join().map_err(|_| "the monitor panicked")?;
    check(&shared, case, seed)
}

/// One racing thread: `rounds` episodes. In each, every thread starts up to
/// two children, then all race waits until each has waited for its own, so
/// that the last child of an episode is often taken by one thread while
/// another blocks in zwait(-1).
fn race(me: usize, shared: &Shared, exe: &std::ffi::CString, rounds: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let (mut tracked, mut plain): (Vec<pid_t>, Vec<pid_t>) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        util::progress();
        for _ in 0..rng.below(3) {
            start(shared, exe, &mut rng, &mut tracked, &mut plain);
        }
        shared.episode.wait();
        for _ in 0..1 + rng.below(2) {
            match rng.below(7) {
                0 if !tracked.is_empty() => {
                    let pid = tracked.swap_remove(rng.below(tracked.len() as u64) as usize);
                    wait_tracked(me, shared, pid, rng.chance(30));
                }
                1 | 2 => match shared.blocking(me, "zwait(-1)", || zr::wait(-1, false)) {
                    Ok(Some((pid, status))) => shared.got(pid, status, "zwait(-1)"),
                    Err(libc::ECHILD) => {}
                    other => shared.violation(format!("zwait(-1): {other:?}")),
                },
                3 => match zr::wait(-1, true) {
                    Ok(Some((pid, status))) => shared.got(pid, status, "zwait(-1, WNOHANG)"),
                    Ok(None) | Err(libc::ECHILD) => {}
                    other => shared.violation(format!("zwait(-1, WNOHANG): {other:?}")),
                },
                4 => match zr::reap_all() {
                    Ok(exits) => exits.into_iter().for_each(|(pid, status)| shared.got(pid, status, "reap_all")),
                    Err(e) => shared.violation(format!("reap_all: {}", util::errno_name(e))),
                },
                5 if !plain.is_empty() => {
                    let pid = plain.swap_remove(rng.below(plain.len() as u64) as usize);
                    wait_plain(me, shared, pid);
                }
                // A foreign wait for any child takes tracked children too (the
                // library then answers ECHILD for them); left out of ZREAP_OWN,
                // where only the plain children's makers may reap them.
                6 if !shared.own => match shared.blocking(me, "waitpid(-1)", || util::waitpid(-1, rng.chance(50))) {
                    Ok(Some((pid, status))) => shared.got(pid, status, "waitpid(-1)"),
                    Ok(None) | Err(libc::ECHILD) => {}
                    Err(e) => shared.violation(format!("waitpid(-1): {}", util::errno_name(e))),
                },
                _ => {}
            }
        }
        for pid in tracked.drain(..) {
            wait_tracked(me, shared, pid, false);
        }
        for pid in plain.drain(..) {
            wait_plain(me, shared, pid);
        }
        shared.episode.wait();
    }
}

/// Starts a child with a random exit code that lives up to 2 ms: zspawn'ed,
/// zfork'ed (tracked) or plain fork()ed.
fn start(shared: &Shared, exe: &std::ffi::CString, rng: &mut Rng, tracked: &mut Vec<pid_t>, plain: &mut Vec<pid_t>) {
    let code = rng.below(256) as i32;
    let usec = rng.below(2_000);
    let kind = rng.below(3);
    let r = util::start_child(kind, exe, code, usec);
    match r {
        Ok(pid) => {
            shared.started.lock().expect("not poisoned").push((pid, code));
            if kind == 2 { plain } else { tracked }.push(pid);
        }
        Err(libc::EAGAIN | libc::ENOMEM) => {}
        Err(e) => shared.violation(format!("starting a child: {}", util::errno_name(e))),
    }
}

/// zwait(pid) for a tracked child this thread started: its exit, or ECHILD
/// when another wait took it.
fn wait_tracked(me: usize, shared: &Shared, pid: pid_t, nohang: bool) {
    let r = if nohang { zr::wait(pid, true) } else { shared.blocking(me, "zwait(pid)", || zr::wait(pid, false)) };
    match r {
        Ok(Some((p, status))) if p == pid => shared.got(pid, status, "zwait(pid)"),
        Ok(None) if nohang => wait_tracked(me, shared, pid, false),
        Err(libc::ECHILD) => {}
        other => shared.violation(format!("zwait({pid}, nohang {nohang}): {other:?}")),
    }
}

/// waitpid(pid) outside the library for a plain fork() child this thread
/// started: its exit, or ECHILD when the library (outside ZREAP_OWN) or a
/// foreign waitpid(-1) took it.
fn wait_plain(me: usize, shared: &Shared, pid: pid_t) {
    match shared.blocking(me, "waitpid(pid)", || util::waitpid(pid, false)) {
        Ok(Some((p, status))) if p == pid => shared.got(pid, status, "waitpid(pid)"),
        Err(libc::ECHILD) if !shared.own => {}
        other => shared.violation(format!("waitpid({pid}) of a plain child: {other:?}")),
    }
}

/// The `-fd` cases: a thread that reaps whenever the reap fd turns readable.
fn poll_reap_fd(shared: &Shared, stop: &AtomicBool) {
    let fd = match zr::reap_fd() {
        Ok(fd) => fd,
        Err(e) => return shared.violation(format!("reap_fd: {}", util::errno_name(e))),
    };
    while !stop.load(SeqCst) {
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 20) } == 1 {
            match zr::reap_all() {
                Ok(exits) => exits.into_iter().for_each(|(pid, status)| shared.got(pid, status, "poll + reap_all")),
                Err(e) => shared.violation(format!("reap_all after poll: {}", util::errno_name(e))),
            }
        }
    }
}

/// Ends the process when a blocking call has not returned within [`HANG`].
fn watch_for_hangs(shared: &Shared, stop: &AtomicBool) {
    util::block_all_signals();
    while !stop.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        let now = shared.t0.elapsed().as_millis() as u64 + 1;
        for me in 0..THREADS {
            let since = shared.blocked[me].load(SeqCst);
            if since != 0 && now.saturating_sub(since) > HANG.as_millis() as u64 {
                let what = *shared.what[me].lock().expect("not poisoned");
                let children = util::task_children();
                // Reaped but not reported: a record no wait was woken for;
                // equal: the last child went elsewhere without a wake.
                let stats = zr::stats();
                eprintln!(
                    "VIOLATION waits: thread {me}'s {what} blocked for {HANG:?}; children now: {children:?}; \
                     {stats:?}; started but not delivered: {:?}",
                    undelivered(shared)
                );
                std::process::exit(3);
            }
        }
    }
}

/// The pids started whose exits no taker has reported yet (at most 10).
fn undelivered(shared: &Shared) -> Vec<pid_t> {
    let mut left: Vec<pid_t> = shared.started.lock().expect("not poisoned").iter().map(|&(pid, _)| pid).collect();
    for &(pid, ..) in shared.delivered.lock().expect("not poisoned").iter() {
        if let Some(i) = left.iter().position(|&p| p == pid) {
            left.swap_remove(i);
        }
    }
    left.truncate(10);
    left
}

/// Every exit delivered once, to one taker, with the code its child was
/// started with; nothing left behind.
fn check(shared: &Shared, case: &str, seed: u64) -> Res<String> {
    let mut v = std::mem::take(&mut *shared.violations.lock().expect("not poisoned"));
    let started = shared.started.lock().expect("not poisoned").clone();
    let delivered = shared.delivered.lock().expect("not poisoned").clone();
    let mut waiting: HashMap<pid_t, Vec<i32>> = HashMap::new();
    for &(pid, code) in &started {
        waiting.entry(pid).or_default().push(code);
    }
    let mut by: HashMap<&str, usize> = HashMap::new();
    for &(pid, status, via) in &delivered {
        *by.entry(via).or_default() += 1;
        let codes = waiting.entry(pid).or_default();
        match codes.iter().position(|&c| libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == c) {
            Some(i) => {
                codes.swap_remove(i);
            }
            None => v.add(format!("{via} delivered pid {pid} ({}): twice, or no such child", status_str(status))),
        }
    }
    let never: Vec<pid_t> = waiting.iter().filter(|(_, c)| !c.is_empty()).map(|(&p, _)| p).take(10).collect();
    if !never.is_empty() {
        v.add(format!("exits never delivered, e.g. pids {never:?}"));
    }
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    let slow = shared.slow.load(SeqCst);
    if slow > SLOW_ALLOWED {
        v.add(format!(
            "{slow} blocking calls took 500 ms or more, where every child lives at most 2 ms: late wake-ups"
        ));
    }
    let stats = zr::stats();
    if stats.tracked != 0 || stats.dropped != 0 {
        v.add(format!("stats at the end: {stats:?} (want nothing tracked, nothing dropped)"));
    }
    let mut takers: Vec<String> = by.into_iter().map(|(via, count)| format!("{via} {count}")).collect();
    takers.sort();
    v.finish(format!(
        "{case}: {THREADS} threads, {} children started, {} exits delivered ({}); {slow} blocking calls took 500 ms \
         or more; seed {seed}",
        started.len(),
        delivered.len(),
        takers.join(", ")
    ))
}
