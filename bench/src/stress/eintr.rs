//! `eintr`: a 100 µs interval timer (SIGALRM, with or without SA_RESTART)
//! fires during spawn and wait loops. Every call must succeed or fail with an
//! errno the API documents for it (EAGAIN/ENOMEM for starting a child, ECHILD
//! for a wait with nothing left; EINTR is documented for none), nothing may
//! hang, and every status must be right and delivered once.

use crate::util::{self, status_str, Expect, Res, Rng, Violations};
use crate::zr;
use libc::{c_int, pid_t};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

pub const CASES: &[&str] = &["all-norestart", "all-restart", "own-norestart", "own-restart", "no-handler-norestart"];

static ALARMS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_alarm(_: c_int) {
    ALARMS.fetch_add(1, SeqCst);
}

fn set_timer(usec: i64) {
    let tv = libc::timeval { tv_sec: 0, tv_usec: usec as libc::suseconds_t };
    let it = libc::itimerval { it_interval: tv, it_value: tv };
    // SAFETY: a valid itimerval.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) };
}

pub fn worker(case: &str, n: u64, seed: u64) -> Res<String> {
    let flags = match case.split_once('-').map(|(s, _)| s) {
        Some("all") => 0,
        Some("own") => zr::OWN,
        Some("no") => zr::NO_HANDLER,
        _ => return Err(format!("unknown case {case}")),
    };
    let restart = case.ends_with("-restart");
    zr::install(flags).map_err(|e| format!("install({flags:#x}): {}", util::errno_name(e)))?;
    zr::reap_fd().map_err(|e| format!("reap_fd: {}", util::errno_name(e)))?;
    let fds0 = util::count_fds();
    let stats0 = zr::stats();
    util::watchdog("eintr", Duration::from_secs(20));
    // SAFETY: a handler that only increments an atomic.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_alarm as extern "C" fn(c_int) as usize;
        act.sa_flags = if restart { libc::SA_RESTART } else { 0 };
        libc::sigaction(libc::SIGALRM, &act, std::ptr::null_mut());
    }
    set_timer(100);

    let exe = util::self_exe();
    let mut rng = Rng::new(seed);
    let mut v = Violations::default();
    let mut live: HashMap<pid_t, Expect> = HashMap::new();
    let (mut started, mut delivered, mut again) = (0u64, 0u64, 0u64);
    let mut ops = [0u64; 5];
    let t0 = Instant::now();
    let mut take = |pid: pid_t, status: c_int, via: &str, live: &mut HashMap<pid_t, Expect>, v: &mut Violations| {
        match live.remove(&pid) {
            Some(e) if e.matches(status) => {}
            Some(e) => v.add(format!("{via}: pid {pid} {} instead of {e:?}", status_str(status))),
            None => v.add(format!("{via}: pid {pid} ({}) was delivered twice or is no child", status_str(status))),
        }
        delivered += 1;
    };
    let mut i = 0;
    while i < n || !live.is_empty() {
        util::progress();
        let op = if i >= n {
            1 + rng.below(4)
        } else if live.len() < 8 {
            0
        } else {
            rng.below(5)
        };
        ops[op as usize] += 1;
        match op {
            0 => {
                i += 1;
                let code = rng.below(256) as i32;
                let usec = if rng.chance(50) { 0 } else { rng.below(3_000) };
                let r = util::start_child(rng.below(if flags & zr::OWN != 0 { 2 } else { 3 }), &exe, code, usec);
                match r {
                    Ok(pid) => {
                        started += 1;
                        live.insert(pid, Expect::Code(code));
                    }
                    Err(libc::EAGAIN | libc::ENOMEM) => again += 1,
                    Err(e) => v.add(format!("starting a child: {}", util::errno_name(e))),
                }
            }
            1 | 2 => {
                let Some(&pid) = live.keys().nth(rng.below(live.len().max(1) as u64) as usize) else { continue };
                let nohang = op == 2;
                match zr::wait(pid, nohang) {
                    Ok(Some((p, s))) if p == pid => take(p, s, "zwait(pid)", &mut live, &mut v),
                    Ok(None) if nohang => {}
                    other => v.add(format!("zwait({pid}, nohang {nohang}): {other:?}")),
                }
            }
            3 => match zr::wait(-1, false) {
                Ok(Some((p, s))) => take(p, s, "zwait(-1)", &mut live, &mut v),
                Err(libc::ECHILD) if live.is_empty() => {}
                other => v.add(format!("zwait(-1) with {} children: {other:?}", live.len())),
            },
            _ => match zr::reap_all() {
                Ok(exits) => {
                    for (p, s) in exits {
                        take(p, s, "reap_all", &mut live, &mut v);
                    }
                }
                Err(e) => v.add(format!("reap_all: {}", util::errno_name(e))),
            },
        }
        if t0.elapsed() > Duration::from_secs(60 + n / 10) {
            v.add(format!("giving up with {} children undelivered", live.len()));
            break;
        }
    }
    set_timer(0);
    let alarms = ALARMS.load(SeqCst);
    let secs = t0.elapsed().as_secs_f64();
    let stats = zr::stats();
    let expected =
        zr::Stats { reaped: stats0.reaped + started, reported: stats0.reported + started, dropped: 0, tracked: 0 };
    if stats != expected || delivered != started {
        v.add(format!("stats {stats:?}, expected {expected:?}; {delivered} deliveries counted here"));
    }
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    if util::count_fds() != fds0 {
        v.add(format!("fd leak: {fds0} fds before, {} after", util::count_fds()));
    }
    if alarms < 100 {
        v.add(format!("only {alarms} SIGALRMs arrived: the timer did not interrupt much"));
    }
    v.finish(format!(
        "{started} children in {secs:.1} s under {alarms} SIGALRMs ({:.0}/s, {}): ops start {}, zwait(pid) {}, \
         zwait(pid, WNOHANG) {}, zwait(-1) {}, reap_all {}; {again} EAGAIN/ENOMEM; every status right, stats exact; seed {seed}",
        alarms as f64 / secs,
        if restart { "SA_RESTART" } else { "no SA_RESTART" },
        ops[0],
        ops[1],
        ops[2],
        ops[3],
        ops[4]
    ))
}
