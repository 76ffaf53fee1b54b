//! `limits`: RLIMIT_NPROC and RLIMIT_NOFILE exhausted. zspawn and zfork must
//! fail cleanly (EAGAIN at the process limit; at the fd limit they may work
//! without a pidfd or fail with EMFILE), leave no stray child and no leaked
//! fd, and work again once the limit is lifted. `install-nproc`: installing
//! ZREAP_NO_HANDLER at the process limit must fail with EAGAIN, or work (its
//! reap fd turns readable for a child once the limit is lifted).
//!
//! As root RLIMIT_NPROC is not enforced (CAP_SYS_RESOURCE/CAP_SYS_ADMIN), so
//! the nproc cases first drop to a uid and gid of their own, which no other
//! process uses: RLIMIT_NPROC counts every task of the uid, and another
//! process's task that ends (say a test run as uid 65534) would make room.

use crate::util::{self, child_argv, status_str, Expect, Res, Violations};
use crate::zr;
use libc::{c_int, pid_t};
use std::time::Duration;

pub const CASES: &[&str] =
    &["nproc-all", "nproc-own", "nproc-no-handler", "nofile-all", "nofile-own", "nofile-no-handler", "install-nproc"];

/// Exit code of the children started to test a method.
const CODE: i32 = 42;
/// Children that hold a process slot sleep this long (they are killed).
const SLEEP_USEC: u64 = 60_000_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Zspawn,
    ZspawnPdeathsig,
    Zfork,
}

const METHODS: [Method; 3] = [Method::Zspawn, Method::ZspawnPdeathsig, Method::Zfork];

fn start(method: Method, usec: u64) -> Result<pid_t, i32> {
    let exe = util::self_exe();
    match method {
        Method::Zspawn => zr::spawn(&child_argv(&exe, CODE, usec, false), 0, None),
        Method::ZspawnPdeathsig => zr::spawn(&child_argv(&exe, CODE, usec, false), libc::SIGKILL, None),
        // SAFETY: the child only runs child_body (raw system calls).
        Method::Zfork => match unsafe { zr::fork() } {
            Ok(0) => util::child_body(CODE, usec, false),
            r => r,
        },
    }
}

pub fn worker(case: &str, rounds: u64, seed: u64) -> Res<String> {
    let flags = if case.ends_with("-own") {
        zr::OWN
    } else if case.ends_with("-no-handler") {
        zr::NO_HANDLER
    } else {
        0
    };
    if case.starts_with("nproc-") || case == "install-nproc" {
        drop_root()?;
    }
    util::watchdog("limits", Duration::from_secs(30));
    let summary = if case.starts_with("nproc-") {
        nproc(flags, rounds)?
    } else if case.starts_with("nofile-") {
        nofile(flags, rounds)?
    } else if case == "install-nproc" {
        install_nproc()?
    } else {
        return Err(format!("unknown case {case}"));
    };
    Ok(format!("{summary}; seed {seed}"))
}

/// Base of the uids the nproc workers take (plus their pid): far above any
/// account's.
const SPARE_UID_BASE: u32 = 0x4000_0000;

/// As root, become uid/gid SPARE_UID_BASE + our pid, with no capability left.
fn drop_root() -> Res<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let id = SPARE_UID_BASE + std::process::id();
    // SAFETY: plain credential system calls; this worker is single-threaded.
    let ok = unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(id) == 0 && libc::setuid(id) == 0 };
    if !ok {
        return Err(format!("dropping root to uid {id}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Tasks (threads included) of our real uid: what RLIMIT_NPROC counts.
fn tasks_of_my_uid() -> u64 {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    util::all_pids()
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.as_str())))
        .map(|s| s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(1))
        .sum()
}

/// Kills `pid` and checks it is collected with that signal.
fn kill_and_wait(pid: pid_t, v: &mut Violations) {
    // SAFETY: our live child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    collect(pid, Expect::Signal(libc::SIGKILL), v);
}

fn collect(pid: pid_t, expect: Expect, v: &mut Violations) {
    match zr::wait(pid, false) {
        Ok(Some((p, s))) if p == pid && expect.matches(s) => {}
        other => v.add(format!("zwait({pid}): {other:?} ({}), expected {expect:?}", describe(&other))),
    }
}

fn describe(r: &Result<Option<(pid_t, c_int)>, i32>) -> String {
    match r {
        Ok(Some((_, s))) => status_str(*s),
        Ok(None) => "not yet".into(),
        Err(e) => util::errno_name(*e),
    }
}

/// One call at the limit: it must fail with one of `allowed`, with no new
/// child and no new fd, or succeed (when `may_work`) and be collected right.
fn at_limit(method: Method, allowed: &[i32], may_work: bool, v: &mut Violations) -> Option<String> {
    let fds = util::count_fds();
    let kids = util::children_of(util::my_pid()).len();
    let tracked = zr::stats().tracked;
    match start(method, 0) {
        Ok(pid) if may_work => {
            collect(pid, Expect::Code(CODE), v);
            Some("worked".into())
        }
        Ok(pid) => {
            v.add(format!("{method:?} at the limit worked (pid {pid})"));
            collect(pid, Expect::Code(CODE), v);
            None
        }
        Err(e) if allowed.contains(&e) => {
            let (fds2, kids2, tracked2) =
                (util::count_fds(), util::children_of(util::my_pid()).len(), zr::stats().tracked);
            if (fds2, kids2, tracked2) != (fds, kids, tracked) {
                v.add(format!(
                    "{method:?} failed with {} but left fds {fds}->{fds2}, children {kids}->{kids2}, tracked {tracked}->{tracked2}",
                    util::errno_name(e)
                ));
            }
            Some(util::errno_name(e))
        }
        Err(e) => {
            v.add(format!("{method:?} at the limit failed with {}, expected one of {allowed:?}", util::errno_name(e)));
            None
        }
    }
}

fn install(flags: u32) -> Res<()> {
    zr::install(flags).map_err(|e| format!("install({flags:#x}): {}", util::errno_name(e)))?;
    zr::reap_fd().map_err(|e| format!("reap_fd: {}", util::errno_name(e)))?;
    Ok(())
}

fn nproc(flags: u32, rounds: u64) -> Res<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Err("still root: RLIMIT_NPROC would not be enforced".into());
    }
    install(flags)?;
    let fds0 = util::count_fds();
    let mut v = Violations::default();
    let (mut holders, mut failures) = (0usize, Vec::new());
    for _ in 0..rounds {
        util::set_soft_limit(libc::RLIMIT_NPROC, tasks_of_my_uid() + 4)?;
        // Fill the process slots with sleepers.
        let mut sleepers = Vec::new();
        loop {
            match start(METHODS[sleepers.len() % 3], SLEEP_USEC) {
                Ok(pid) => sleepers.push(pid),
                Err(libc::EAGAIN) => break,
                Err(e) => {
                    v.add(format!("filling the process slots: {}", util::errno_name(e)));
                    break;
                }
            }
            if sleepers.len() > 64 {
                v.add("RLIMIT_NPROC is not enforced: 64 children started".into());
                break;
            }
        }
        holders += sleepers.len();
        for method in METHODS {
            if let Some(what) = at_limit(method, &[libc::EAGAIN], false, &mut v) {
                failures.push(what);
            }
        }
        // Lift the limit: everything works again.
        util::set_soft_limit(libc::RLIMIT_NPROC, util::hard_limit(libc::RLIMIT_NPROC))?;
        for method in METHODS {
            match start(method, 0) {
                Ok(pid) => collect(pid, Expect::Code(CODE), &mut v),
                Err(e) => v.add(format!("{method:?} after lifting the limit: {}", util::errno_name(e))),
            }
        }
        for pid in sleepers {
            kill_and_wait(pid, &mut v);
        }
        util::progress();
    }
    finish(
        v,
        fds0,
        format!(
            "{rounds} rounds at RLIMIT_NPROC ({holders} sleepers filled it), calls at the limit: {}",
            tally(&failures)
        ),
    )
}

fn nofile(flags: u32, rounds: u64) -> Res<String> {
    install(flags)?;
    let fds0 = util::count_fds();
    let mut v = Violations::default();
    let mut outcomes = Vec::new();
    // SAFETY: opening /dev/null.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if null == -1 {
        return Err(format!("open /dev/null: {}", std::io::Error::last_os_error()));
    }
    for _ in 0..rounds {
        util::set_soft_limit(libc::RLIMIT_NOFILE, fds0 as u64 + 64)?;
        let mut fillers = Vec::new();
        loop {
            // SAFETY: duplicates our /dev/null fd (close-on-exec).
            let fd = unsafe { libc::fcntl(null, libc::F_DUPFD_CLOEXEC, 0) };
            if fd == -1 {
                break;
            }
            fillers.push(fd);
        }
        // No fd left: the library may track without a pidfd, or fail.
        for method in METHODS {
            if let Some(what) = at_limit(method, &[libc::EMFILE, libc::ENFILE], true, &mut v) {
                outcomes.push(what);
            }
        }
        if let Err(e) = zr::reap_all() {
            v.add(format!("reap_all at the fd limit: {}", util::errno_name(e)));
        }
        for fd in fillers {
            // SAFETY: closing our own duplicates.
            unsafe { libc::close(fd) };
        }
        util::set_soft_limit(libc::RLIMIT_NOFILE, util::hard_limit(libc::RLIMIT_NOFILE))?;
        for method in METHODS {
            match start(method, 0) {
                Ok(pid) => collect(pid, Expect::Code(CODE), &mut v),
                Err(e) => v.add(format!("{method:?} after lifting the limit: {}", util::errno_name(e))),
            }
        }
        util::progress();
    }
    // SAFETY: our fd.
    unsafe { libc::close(null) };
    finish(v, fds0, format!("{rounds} rounds at RLIMIT_NOFILE, calls at the limit: {}", tally(&outcomes)))
}

/// "EAGAIN x6, worked x3".
fn tally(outcomes: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for o in outcomes {
        match counts.iter_mut().find(|(k, _)| k == o) {
            Some((_, n)) => *n += 1,
            None => counts.push((o.clone(), 1)),
        }
    }
    counts.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", ")
}

fn finish(mut v: Violations, fds0: usize, summary: String) -> Res<String> {
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    let fds = util::count_fds();
    if fds != fds0 {
        v.add(format!("fd leak: {fds0} fds before, {fds} after"));
    }
    let stats = zr::stats();
    if stats.tracked != 0 {
        v.add(format!("stats.tracked is {} with no child left", stats.tracked));
    }
    v.finish(format!("{summary}; no child, no fd left; stats {stats:?}"))
}

fn install_nproc() -> Res<String> {
    util::set_soft_limit(libc::RLIMIT_NPROC, tasks_of_my_uid())?;
    match zr::install(zr::NO_HANDLER) {
        Err(libc::EAGAIN) => return Ok("install(NO_HANDLER) at RLIMIT_NPROC: EAGAIN".into()),
        Err(e) => return Err(format!("install(NO_HANDLER) at RLIMIT_NPROC: {}, expected EAGAIN", util::errno_name(e))),
        Ok(()) => {}
    }
    let fd = zr::reap_fd().map_err(|e| format!("reap_fd: {}", util::errno_name(e)))?;
    util::set_soft_limit(libc::RLIMIT_NPROC, util::hard_limit(libc::RLIMIT_NPROC))?;
    // SAFETY: the child only calls _exit.
    let pid = match unsafe { libc::fork() } {
        // SAFETY: _exit is async-signal-safe.
        0 => unsafe { libc::_exit(0) },
        -1 => return Err(format!("fork after lifting the limit: {}", std::io::Error::last_os_error())),
        pid => pid,
    };
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let readable = unsafe { libc::poll(&mut pfd, 1, 5000) } > 0;
    let exits = zr::reap_all().unwrap_or_default();
    if !exits.iter().any(|(p, _)| *p == pid) {
        let _ = util::waitpid(pid, false);
    }
    if readable {
        Ok("install(NO_HANDLER) at RLIMIT_NPROC worked, and its reap fd turned readable once the limit was lifted"
            .into())
    } else {
        Err("install(NO_HANDLER) returned 0 at RLIMIT_NPROC, but reap_fd() did not turn readable within 5 s for a \
             child that exited after the limit was lifted (its watcher thread never started)"
            .into())
    }
}
