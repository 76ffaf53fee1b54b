//! `children`: many children from 8 threads, with random exit codes, kills
//! and lifetimes, started with zspawn, zfork and plain fork. Every exit must
//! be delivered exactly once (to zwait or to reap_all) with the right status,
//! the stats must be exact, and no zombie and no fd may be left.

use crate::util::{self, child_argv, child_body, status_str, Expect, Res, Rng, Violations};
use crate::zr;
use libc::{c_int, pid_t};
use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const CASES: &[&str] = &["all", "own", "all-no-handler", "own-no-handler"];

const THREADS: u64 = 8;
/// Children a thread has in flight before it waits for its oldest.
const WINDOW: usize = 16;
/// Lifetime of a child that is to be killed: the kill surely comes first.
const KILL_ME_USEC: u64 = 60_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Method {
    Zspawn,
    Zfork,
    Fork,
}

/// Who takes the exit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taker {
    /// zwait(pid) blocking, by the starting thread (reap_all may win).
    Wait,
    /// zwait(pid, WNOHANG) until it answers (reap_all may win).
    Poll,
    /// Only the collector thread's reap_all.
    ReapAll,
    /// A plain fork() child in the OWN scope: the thread's own waitpid.
    Waitpid,
}

struct InFlight {
    pid: pid_t,
    id: u64,
    expect: Expect,
    kill: Option<(Instant, c_int)>,
    taker: Taker,
}

/// Every child not yet delivered, by pid (oldest first), and deliveries that
/// came before their child was registered.
#[derive(Default)]
struct Ledger {
    open: HashMap<pid_t, VecDeque<(u64, Expect)>>,
    early: HashMap<pid_t, VecDeque<c_int>>,
    by_wait: u64,
    by_reap_all: u64,
    by_waitpid: u64,
    violations: Violations,
}

impl Ledger {
    fn register(&mut self, pid: pid_t, id: u64, expect: Expect) {
        if let Some(status) = self.early.get_mut(&pid).and_then(VecDeque::pop_front) {
            self.early.retain(|_, q| !q.is_empty());
            self.check(pid, expect, status, "reap_all (before registration)");
        } else {
            self.open.entry(pid).or_default().push_back((id, expect));
        }
    }

    fn check(&mut self, pid: pid_t, expect: Expect, status: c_int, via: &str) {
        if !expect.matches(status) {
            self.violations.add(format!("pid {pid}: {via} gave {}, expected {expect:?}", status_str(status)));
        }
    }

    /// An exit delivered for `pid`; `id` is the child the taker expects (zwait).
    fn deliver(&mut self, pid: pid_t, status: c_int, id: Option<u64>, via: &str) {
        let entry = self.open.get_mut(&pid).and_then(VecDeque::pop_front);
        if self.open.get(&pid).is_some_and(VecDeque::is_empty) {
            self.open.remove(&pid);
        }
        match entry {
            Some((got_id, expect)) => {
                if id.is_some_and(|i| i != got_id) {
                    self.violations.add(format!("pid {pid}: {via} answered for an older child with the same pid"));
                }
                self.check(pid, expect, status, via);
            }
            None if id.is_none() => self.early.entry(pid).or_default().push_back(status),
            None => self
                .violations
                .add(format!("pid {pid}: {via} delivered an exit already delivered ({})", status_str(status))),
        }
    }
}

struct Shared {
    flags: u32,
    exe: CString,
    ledger: Mutex<Ledger>,
    started: [std::sync::atomic::AtomicU64; 3],
    killed: std::sync::atomic::AtomicU64,
    retries: std::sync::atomic::AtomicU64,
}

pub fn worker(case: &str, n: u64, seed: u64) -> Res<String> {
    let flags = match case {
        "all" => 0,
        "own" => zr::OWN,
        "all-no-handler" => zr::NO_HANDLER,
        "own-no-handler" => zr::OWN | zr::NO_HANDLER,
        _ => return Err(format!("unknown case {case}")),
    };
    // One pidfd per tracked child in flight.
    util::set_soft_limit(libc::RLIMIT_NOFILE, util::hard_limit(libc::RLIMIT_NOFILE))?;
    zr::install(flags).map_err(|e| format!("install({flags:#x}): {}", util::errno_name(e)))?;
    let reap_fd = zr::reap_fd().map_err(|e| format!("reap_fd: {}", util::errno_name(e)))?;
    let fds_before = util::count_fds();
    let stats_before = zr::stats();
    let started = Instant::now();

    let shared = Shared {
        flags,
        exe: util::self_exe(),
        ledger: Mutex::new(Ledger::default()),
        started: Default::default(),
        killed: Default::default(),
        retries: Default::default(),
    };
    let done = AtomicBool::new(false);
    let mut late_batches = 0u64;
    std::thread::scope(|s| {
        let starters: Vec<_> = (0..THREADS)
            .map(|t| {
                let share = n / THREADS + u64::from(t < n % THREADS);
                let shared = &shared;
                s.spawn(move || starter(shared, share, seed.wrapping_add(t * 7919)))
            })
            .collect();
        let collector = s.spawn(|| collector(&shared, reap_fd, &done));
        for t in starters {
            t.join().expect("starter thread panicked");
        }
        done.store(true, SeqCst);
        late_batches = collector.join().expect("collector panicked");
    });

    let mut ledger = shared.ledger.into_inner().expect("ledger");
    let mut v = std::mem::take(&mut ledger.violations);
    let open: usize = ledger.open.values().map(VecDeque::len).sum();
    if open > 0 {
        let some: Vec<_> = ledger.open.keys().take(10).collect();
        v.add(format!("{open} exit(s) never delivered (pids {some:?}...)"));
    }
    let early: usize = ledger.early.values().map(VecDeque::len).sum();
    if early > 0 {
        let some: Vec<_> = ledger.early.keys().take(10).collect();
        v.add(format!("{early} exit(s) delivered by reap_all for no child of ours, or twice (pids {some:?}...)"));
    }
    let count = |m: Method| shared.started[m as usize].load(SeqCst);
    let (zspawned, zforked, forked) = (count(Method::Zspawn), count(Method::Zfork), count(Method::Fork));
    let in_scope = zspawned + zforked + if flags & zr::OWN == 0 { forked } else { 0 };
    let delivered = ledger.by_wait + ledger.by_reap_all;
    let stats = zr::stats();
    let expected = zr::Stats {
        reaped: stats_before.reaped + in_scope,
        reported: stats_before.reported + in_scope,
        dropped: 0,
        tracked: 0,
    };
    if stats != expected || delivered != in_scope {
        v.add(format!("stats {stats:?}, expected {expected:?}; {delivered} deliveries counted here"));
    }
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    let fds_after = util::count_fds();
    if fds_after != fds_before {
        v.add(format!("fd leak: {fds_before} fds before, {fds_after} after"));
    }
    v.finish(format!(
        "{n} children in {:.1} s (zspawn {zspawned}, zfork {zforked}, fork {forked}; {} killed, {} EAGAIN retries); \
         delivered: zwait {}, reap_all {}, own waitpid {}; {late_batches} reap_all batches found after a 1 s poll timeout; \
         stats {stats:?}; 0 children left; fds {fds_before}->{fds_after}; seed {seed}",
        started.elapsed().as_secs_f64(),
        shared.killed.load(SeqCst),
        shared.retries.load(SeqCst),
        ledger.by_wait,
        ledger.by_reap_all,
        ledger.by_waitpid,
    ))
}

/// Polls the reap fd and hands every reap_all delivery to the ledger until
/// the starters are done and nothing is open (or a minute has passed).
/// Returns how many times a poll timed out although reap_all then found exits.
fn collector(shared: &Shared, reap_fd: c_int, done: &AtomicBool) -> u64 {
    let mut late = 0;
    let mut idle_since: Option<Instant> = None;
    loop {
        let mut pfd = libc::pollfd { fd: reap_fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd. (-1/EINTR: our SIGCHLD handler ran here.)
        let timed_out = unsafe { libc::poll(&mut pfd, 1, 1000) } == 0;
        let exits = match zr::reap_all() {
            Ok(exits) => exits,
            Err(e) => {
                shared.ledger.lock().unwrap().violations.add(format!("reap_all: {}", util::errno_name(e)));
                Vec::new()
            }
        };
        if timed_out && !exits.is_empty() {
            late += 1;
        }
        {
            let mut ledger = shared.ledger.lock().unwrap();
            ledger.by_reap_all += exits.len() as u64;
            for (pid, status) in exits {
                ledger.deliver(pid, status, None, "reap_all");
            }
            if done.load(SeqCst) && ledger.open.is_empty() && ledger.early.is_empty() {
                return late;
            }
        }
        // A little slack, so that zwait gets its share of the exits.
        std::thread::sleep(Duration::from_millis(2));
        if done.load(SeqCst) {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(60) {
                return late;
            }
        }
    }
}

fn starter(shared: &Shared, share: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let own = shared.flags & zr::OWN != 0;
    let mut window: VecDeque<InFlight> = VecDeque::new();
    for i in 0..share {
        let method = match rng.below(3) {
            0 => Method::Zspawn,
            1 => Method::Zfork,
            _ => Method::Fork,
        };
        let fate = rng.below(100);
        let (expect, usec, kill) = if fate < 10 {
            (Expect::Signal(libc::SIGKILL), KILL_ME_USEC, Some(libc::SIGKILL))
        } else if fate < 20 {
            (Expect::Signal(libc::SIGTERM), KILL_ME_USEC, Some(libc::SIGTERM))
        } else {
            let code = rng.below(256) as i32;
            let usec = match rng.below(10) {
                0..=4 => 0,
                5..=8 => rng.below(2_000),
                _ => rng.below(20_000),
            };
            (Expect::Code(code), usec, None)
        };
        let code = match expect {
            Expect::Code(c) => c,
            _ => 0,
        };
        let taker = if method == Method::Fork && own {
            Taker::Waitpid
        } else {
            match rng.below(3) {
                0 => Taker::Wait,
                1 => Taker::Poll,
                _ => Taker::ReapAll,
            }
        };
        let Some(pid) = start(shared, method, code, usec) else { return };
        let id = seed.wrapping_mul(1_000_003).wrapping_add(i);
        if taker != Taker::Waitpid {
            shared.ledger.lock().unwrap().register(pid, id, expect);
        }
        let kill = kill.map(|sig| (Instant::now() + Duration::from_micros(rng.below(2_000)), sig));
        window.push_back(InFlight { pid, id, expect, kill, taker });
        if window.len() >= WINDOW {
            finish(shared, window.pop_front().expect("non-empty"));
        }
    }
    while let Some(oldest) = window.pop_front() {
        finish(shared, oldest);
    }
}

/// Starts one child; None (after recording why) when that is impossible.
fn start(shared: &Shared, method: Method, code: i32, usec: u64) -> Option<pid_t> {
    loop {
        let r = match method {
            Method::Zspawn => zr::spawn(&child_argv(&shared.exe, code, usec, false), 0, None),
            // SAFETY: the child only runs child_body (raw system calls, _exit).
            Method::Zfork => unsafe { zr::fork() },
            // SAFETY: as above.
            Method::Fork => match unsafe { libc::fork() } {
                -1 => Err(util::errno()),
                pid => Ok(pid),
            },
        };
        match r {
            Ok(0) if method != Method::Zspawn => child_body(code, usec, false),
            Ok(pid) => {
                shared.started[method as usize].fetch_add(1, SeqCst);
                return Some(pid);
            }
            Err(libc::EAGAIN) => {
                shared.retries.fetch_add(1, SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                shared.ledger.lock().unwrap().violations.add(format!("start: {}", util::errno_name(e)));
                return None;
            }
        }
    }
}

/// Kills the child if it is to be killed, then lets its taker take its exit.
fn finish(shared: &Shared, child: InFlight) {
    if let Some((at, sig)) = child.kill {
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        // SAFETY: the child cannot end on its own before the kill (it sleeps a
        // minute), so its pid is still ours.
        if unsafe { libc::kill(child.pid, sig) } == -1 {
            let e = util::errno();
            shared.ledger.lock().unwrap().violations.add(format!("kill({}): {}", child.pid, util::errno_name(e)));
        }
        shared.killed.fetch_add(1, SeqCst);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = match child.taker {
        Taker::ReapAll => return,
        Taker::Waitpid => {
            let r = util::waitpid(child.pid, false);
            let mut ledger = shared.ledger.lock().unwrap();
            match r {
                Ok(Some((_, status))) => {
                    ledger.by_waitpid += 1;
                    ledger.check(child.pid, child.expect, status, "own waitpid");
                }
                other => ledger.violations.add(format!(
                    "plain fork child {} in the OWN scope: its own waitpid got {other:?} (zreap took it?)",
                    child.pid
                )),
            }
            return;
        }
        Taker::Wait => zr::wait(child.pid, false),
        Taker::Poll => loop {
            match zr::wait(child.pid, true) {
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
                other => break other,
            }
        },
    };
    let mut ledger = shared.ledger.lock().unwrap();
    match answer {
        Ok(Some((pid, status))) if pid == child.pid => {
            ledger.by_wait += 1;
            ledger.deliver(pid, status, Some(child.id), "zwait");
        }
        // reap_all took it first: the ledger gets it from the collector.
        Err(libc::ECHILD) => {}
        other => ledger.violations.add(format!("zwait({}) gave {other:?}", child.pid)),
    }
}
