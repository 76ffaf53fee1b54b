//! `daemon`: zdaemonize with the caller, the intermediate or the daemon
//! killed at a random moment (or nothing killed). The caller must end (no
//! hang); with nothing killed it must succeed; no process and no zombie may
//! be left once the daemon's short life is over; the pidfile is never half
//! written, names the daemon while it runs, is removed when the daemon exits
//! normally, and a stale one never blocks the next daemon. This process is a
//! subreaper: the daemon and every orphan come here and are reaped.

use crate::util::{self, Res, Rng, Violations};
use crate::zr;
use libc::pid_t;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const CASES: &[&str] = &["kill"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Nothing,
    Caller,
    Intermediate,
    Daemon,
}

/// The children of one thread, as the kernel lists them (cheap to read,
/// so the short-lived intermediate can be caught).
fn children_of_thread(pid: pid_t) -> Vec<pid_t> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// The live process of `role`, if there is one now. The intermediate is the
/// caller's child; the daemon is the intermediate's child or, once that is
/// gone, ours (we are the subreaper).
fn find(role: Role, caller: pid_t) -> Option<pid_t> {
    let intermediate = children_of_thread(caller).into_iter().find(|&p| alive(p));
    let pid = match role {
        Role::Nothing => None,
        Role::Caller => Some(caller),
        Role::Intermediate => intermediate,
        Role::Daemon => match intermediate {
            Some(i) => children_of_thread(i).into_iter().next(),
            None => util::task_children().into_iter().find(|&p| p != caller),
        },
    };
    pid.filter(|&p| alive(p))
}

fn read_pidfile(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn alive(pid: pid_t) -> bool {
    matches!(util::proc_stat(pid), Some((state, ..)) if state != 'Z')
}

pub fn worker(case: &str, rounds: u64, seed: u64) -> Res<String> {
    if case != "kill" {
        return Err(format!("unknown case {case}"));
    }
    util::become_subreaper()?;
    let dir = std::env::temp_dir().join(format!("zreap-stress-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pidfile = dir.join("daemon.pid");
    let mut rng = Rng::new(seed);
    let mut v = Violations::default();
    let mut killed = [0u64; 4];
    let (mut succeeded, mut failed, mut missed, mut stale, mut temp_left) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_stale = None;
    let started = Instant::now();
    for round in 0..rounds {
        let wait_ready = rng.chance(50);
        let ret = rng.chance(50);
        let role = [Role::Nothing, Role::Caller, Role::Intermediate, Role::Daemon][rng.below(4) as usize];
        let signal = if rng.chance(80) { libc::SIGKILL } else { libc::SIGTERM };
        let delay = rng.below(if role == Role::Intermediate { 500 } else { 5_000 });
        let mut caller = Command::new(util::self_exe().to_str().unwrap_or("/proc/self/exe"))
            .args(["__helper", "daemon-caller"])
            .arg(&pidfile)
            .arg(if wait_ready { "wait-ready" } else { "-" })
            .arg(if ret { "return" } else { "-" })
            .arg(rng.below(5_000).to_string())
            .arg(rng.below(30_000).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the caller: {e}"))?;
        let cpid = caller.id() as pid_t;
        let mut victim = None;
        if role != Role::Nothing {
            // A random moment, then the first moment the victim exists.
            util::sleep_raw(delay);
            let until = Instant::now() + Duration::from_millis(50);
            while victim.is_none() && Instant::now() < until && alive(cpid) {
                victim = find(role, cpid);
            }
            victim = victim.or_else(|| find(role, cpid));
            match victim {
                Some(pid) => {
                    // SAFETY: a live descendant of ours (we are its subreaper).
                    unsafe { libc::kill(pid, signal) };
                    killed[role as usize] += 1;
                }
                None => missed += 1,
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match caller.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = caller.kill();
                    let _ = caller.wait();
                    break None;
                }
            }
        };
        let fd = caller.stdout.as_ref().expect("piped").as_raw_fd();
        let said = util::read_line(fd, Duration::from_millis(if status.is_some() { 2000 } else { 1 }));
        let content = read_pidfile(&pidfile);
        let mut err = String::new();
        let _ = caller.stderr.take().map(|mut e| e.read_to_string(&mut err));
        let what = format!(
            "round {round} (caller {cpid}, kill {role:?} {victim:?} with {signal} after {delay} µs; wait_ready {wait_ready}, return {ret})"
        );
        match status {
            None => v.add(format!("{what}: the caller did not end within 20 s")),
            Some(s) if s.success() => {
                succeeded += 1;
                // With RETURN the caller says which daemon; the pidfile names
                // it while it runs (its exit handler may have removed it).
                if let Some(d) =
                    said.as_deref().and_then(|l| l.strip_prefix("daemon ")).and_then(|p| p.parse::<pid_t>().ok())
                {
                    if content.as_deref().is_some_and(|c| c != format!("{d}\n")) && alive(d) {
                        v.add(format!("{what}: daemon {d} runs but the pidfile says {content:?}"));
                    }
                } else if ret {
                    v.add(format!("{what}: the caller exited 0 but said {said:?}"));
                }
            }
            Some(s) => {
                failed += 1;
                // Only a kill explains a failure, and only the caller's kill a signal.
                if victim.is_none() || (s.signal().is_some() && role != Role::Caller) {
                    v.add(format!(
                        "{what}: the caller ended with {s}: {} {}",
                        said.clone().unwrap_or_default(),
                        err.trim()
                    ));
                }
            }
        }
        // The daemon lives at most 35 ms; then nothing may be left.
        let (_, killed_late) = util::reap_orphans(Duration::from_secs(10));
        if killed_late > 0 {
            v.add(format!("{what}: {killed_late} process(es) still running after 10 s"));
        }
        if let Err(e) = util::no_children_left() {
            v.add(format!("{what}: {e}"));
        }
        // The pidfile: absent, or a complete pid of a dead daemon that was
        // killed (in this round, or earlier and not replaced since).
        let now = read_pidfile(&pidfile);
        match now.as_deref().map(|c| c.strip_suffix('\n').and_then(|p| p.parse::<pid_t>().ok())) {
            None => {}
            // Left by an earlier round's killed daemon, not replaced since.
            Some(Some(p)) if !alive(p) && now == last_stale => {}
            Some(Some(p)) if !alive(p) => {
                stale += 1;
                if role != Role::Daemon || victim.is_none() {
                    v.add(format!("{what}: the daemon {p} ended but its pidfile stayed"));
                }
            }
            Some(_) => v.add(format!("{what}: pidfile holds {now:?} after the round")),
        }
        last_stale = now;
        // A daemon killed while it wrote the pidfile leaves its temporary
        // file: counted (no promise covers it), then removed.
        let temps: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".tmp")).collect())
            .unwrap_or_default();
        if !temps.is_empty() {
            temp_left += temps.len() as u64;
            for t in temps {
                let _ = std::fs::remove_file(dir.join(t));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    v.finish(format!(
        "{rounds} zdaemonize rounds in {:.1} s: killed caller {}, intermediate {}, daemon {} ({missed} victims already \
         gone); callers succeeded {succeeded}, failed {failed}; {stale} stale pidfiles (killed daemons), {temp_left} \
         temporary pidfiles left by daemons killed while writing it; no hang, nothing left; seed {seed}",
        started.elapsed().as_secs_f64(),
        killed[Role::Caller as usize],
        killed[Role::Intermediate as usize],
        killed[Role::Daemon as usize],
    ))
}

/// `__helper daemon-caller PIDFILE wait-ready|- return|- READY_USEC LIFE_USEC`.
pub fn caller(args: &[String]) -> i32 {
    let arg = |i: usize| args.get(i).map_or("", String::as_str);
    let Ok(pidfile) = CString::new(arg(0)) else { return 2 };
    let (wait_ready, ret) = (arg(1) == "wait-ready", arg(2) == "return");
    let (ready_usec, life_usec) = (arg(3).parse().unwrap_or(0), arg(4).parse().unwrap_or(0));
    // SAFETY: this helper is single-threaded.
    match unsafe { zr::daemonize(&pidfile, wait_ready, ret) } {
        Ok(zr::Daemonized::Daemon) => {
            if wait_ready {
                util::sleep_raw(ready_usec);
                let _ = zr::daemon_ready();
            }
            util::sleep_raw(life_usec);
            // A normal exit: the pidfile goes.
            0
        }
        Ok(zr::Daemonized::Caller(pid)) => {
            println!("daemon {pid}");
            0
        }
        Err(e) => {
            println!("error {}", util::errno_name(e));
            2
        }
    }
}
