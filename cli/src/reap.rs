//! `zreap reap`: makes a running parent reap its zombies without its
//! cooperation (Solaris' preap): it is made to call `wait4(ZOMBIE, NULL,
//! WNOHANG | __WALL, NULL)` once per zombie through ptrace (see `inject`).
//! The exit status is read from `/proc/ZOMBIE/stat` before, since the
//! parent's own call discards it.

use crate::inject::{self, Tracee};
use crate::procfs::{self, ReadError, Stat, Status};
use crate::ps;
use nix::sys::signal::{SigSet, SigmaskHow};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

pub struct ReapConfig {
    pub pid: i32,
    pub zombies: Vec<i32>,
    pub force: bool,
    pub dry_run: bool,
}

/// What became of one zombie zreap tried.
enum Outcome {
    /// Reaped; its exit status in `waitpid`'s encoding, if the kernel shows it.
    Reaped(Option<i32>),
    /// Not a zombie child of the parent any more when its turn came.
    Vanished,
    /// `wait4` in the parent failed or returned something else (raw result).
    Failed(i64),
}

fn stat_of(pid: i32) -> Result<Stat, ReadError> {
    procfs::stat_at(Path::new(&format!("/proc/{pid}/stat")))
}

/// "exited with status 3", "killed by SIGTERM (core dumped)", from a `waitpid` status.
fn describe_status(code: Option<i32>) -> String {
    let Some(s) = code else { return "exit status unknown (kernel older than 3.5)".to_string() };
    if libc::WIFEXITED(s) {
        return format!("exited with status {}", libc::WEXITSTATUS(s));
    }
    let sig = libc::WTERMSIG(s);
    let name = zreap::Signal::new(sig).map_or(sig.to_string(), |s| format!("SIG{s}"));
    format!("killed by {name}{}", if libc::WCOREDUMP(s) { " (core dumped)" } else { "" })
}

/// Why `PTRACE_SEIZE` gave EPERM: who zreap is, who the parent is, and the
/// rule in force (Yama's `kernel.yama.ptrace_scope` if present).
fn denied_reason(pid: i32) -> String {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid().to_string()).unwrap_or("?".to_string());
    // CAP_SYS_PTRACE is capability 19.
    let cap = procfs::read(Path::new("/proc/self/status"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("CapEff:").map(|v| u64::from_str_radix(v.trim(), 16).ok()))?
        })
        .is_some_and(|caps| caps & (1 << 19) != 0);
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok().map(|s| s.trim().to_string());
    let rule = match scope.as_deref() {
        None => "no Yama LSM here (no kernel.yama.ptrace_scope): tracing needs the same uid as the parent (and a \
                 dumpable parent, not setuid) or CAP_SYS_PTRACE"
            .to_string(),
        Some("0") => "kernel.yama.ptrace_scope = 0: tracing needs the same uid (and a dumpable parent) or \
                      CAP_SYS_PTRACE"
            .to_string(),
        Some("1") => "kernel.yama.ptrace_scope = 1: only an ancestor of the parent, or a process with \
                      CAP_SYS_PTRACE, may trace it: run zreap as root (sudo)"
            .to_string(),
        Some("2") => "kernel.yama.ptrace_scope = 2: only a process with CAP_SYS_PTRACE may trace".to_string(),
        Some(s) => format!("kernel.yama.ptrace_scope = {s}: no process may trace (until reboot)"),
    };
    format!(
        "ptrace(PTRACE_SEIZE, {pid}): permission denied: zreap runs as uid {me} {} CAP_SYS_PTRACE, {pid} as uid \
         {owner}; {rule}",
        if cap { "with" } else { "without" }
    )
}

/// Why zreap will not touch `pid` without `--force`, if it will not.
fn refusals(pid: i32, stat: &Stat, status: &Status, cause: Option<&str>, summary: &str) -> Vec<String> {
    let name = format!("{pid} ({})", stat.comm);
    let mut out = Vec::new();
    if pid == 1 {
        out.push("PID 1 is init: taking the exit statuses of its children can break it".to_string());
    }
    if pid == std::process::id() as i32 {
        out.push(format!("{pid} is zreap itself"));
    }
    if stat.state == 'D' {
        out.push(format!(
            "{name} is in state D (uninterruptible sleep): it cannot stop for ptrace until it leaves the kernel"
        ));
    }
    if let Some(t) = status.tracer_pid.filter(|&t| t != 0) {
        let comm = stat_of(t).map(|s| s.comm).unwrap_or("?".to_string());
        out.push(format!("{name} is traced by {t} ({comm}): a process has one tracer at a time"));
    } else if stat.state == 'T' || stat.state == 't' {
        out.push(format!(
            "{name} is stopped (state {}): kill -CONT {pid} first (it may then reap by itself); with --force its \
             zombies are reaped and it stays stopped",
            stat.state
        ));
    }
    if let Some(c @ ("handler-leaks" | "signalfd-not-read")) = cause {
        out.push(format!(
            "{name} collects its children itself ([{c}]: {summary}): these zombies are a transient or a bug to \
             fix in it, and taking their statuses could break it"
        ));
    }
    out
}

/// The thread to stop: the main one unless it has exited.
fn pick_thread(pid: i32) -> i32 {
    procfs::threads(pid)
        .into_iter()
        .find(|t| t.tid == pid && t.state != "Z" && t.state != "X")
        .or_else(|| procfs::threads(pid).into_iter().find(|t| t.state != "Z" && t.state != "X"))
        .map_or(pid, |t| t.tid)
}

pub fn run(cfg: ReapConfig) -> i32 {
    let pid = cfg.pid;
    let fail = |code: i32, msg: String| {
        eprintln!("zreap reap: {msg}");
        code
    };
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return fail(1, format!("not supported on {}: x86_64 and aarch64 only", std::env::consts::ARCH));
    }
    let stat = match stat_of(pid) {
        Ok(s) => s,
        Err(ReadError::Gone) => return fail(2, format!("no process {pid}")),
        Err(ReadError::Unreadable(w)) => return fail(1, w),
    };
    let name = format!("{pid} ({})", stat.comm);
    let status =
        procfs::read(Path::new(&format!("/proc/{pid}/status"))).map(|t| procfs::parse_status(&t)).unwrap_or_default();
    let group = match ps::report(Some(pid)) {
        Ok(r) => r.groups.into_iter().find(|g| g.parent.pid == pid),
        Err(e) => return fail(2, e),
    };
    let (mut zombies, cause, summary) = match group {
        Some(g) => (g.zombies, Some(g.diagnosis.cause), g.diagnosis.summary),
        None => (Vec::new(), None, String::new()),
    };

    let refused = refusals(pid, &stat, &status, cause, &summary);
    if !refused.is_empty() && !cfg.force {
        for r in &refused {
            eprintln!("zreap reap: refused: {r}");
        }
        eprintln!("zreap reap: nothing done (--force overrides)");
        return 1;
    }

    // The zombies asked for (or all), less those nobody can reap yet.
    let mut requested: Vec<i32> = zombies.iter().map(|z| z.pid).collect();
    if !cfg.zombies.is_empty() {
        requested = cfg.zombies.clone();
        for &z in &cfg.zombies {
            if zombies.iter().any(|k| k.pid == z) {
                continue;
            }
            match stat_of(z) {
                Err(_) => println!("{z}: no such process (already gone)"),
                Ok(s) => eprintln!(
                    "zreap reap: {z} ({}) is not a zombie child of {pid} (state {}, parent {}): left alone",
                    s.comm, s.state, s.ppid
                ),
            }
        }
        zombies.retain(|k| cfg.zombies.contains(&k.pid));
    }
    zombies.retain(|z| {
        if z.live_threads.is_empty() {
            return true;
        }
        let threads: Vec<String> = z
            .live_threads
            .iter()
            .map(|t| format!("{} state {} wchan {}", t.tid, t.state, t.wchan.as_deref().unwrap_or("-")))
            .collect();
        eprintln!(
            "zreap reap: zombie {} ({}) is not reapable yet, not attempted: a thread of it has not exited ({}); \
             see zreap ps --pid {pid}",
            z.pid,
            z.comm,
            threads.join(", ")
        );
        false
    });
    let remaining = |requested: &[i32]| requested.iter().filter(|&&z| stat_of(z).is_ok()).count();
    if zombies.is_empty() {
        if requested.is_empty() {
            println!("no zombie children of {name}");
        }
        return i32::from(remaining(&requested) > 0);
    }

    let tid = pick_thread(pid);
    if cfg.dry_run {
        println!(
            "would stop {name} (thread {tid}) with PTRACE_SEIZE + PTRACE_INTERRUPT and make it call \
             wait4(ZOMBIE, NULL, WNOHANG|__WALL, NULL) for {} zombie(s):",
            zombies.len()
        );
        for z in &zombies {
            let code = stat_of(z.pid).ok().and_then(|s| s.exit_code);
            println!("  {} ({}): {}", z.pid, z.comm, describe_status(code));
        }
        println!("then restore its registers and detach; {pid} would never see these statuses");
        return i32::from(remaining(&requested) > 0);
    }

    // Every signal blocked: the default action of any (USR1, ALRM, ...)
    // would end zreap and detach the parent with injected registers. The
    // mask comes back once the outcome is printed, so a signal that came
    // meanwhile acts after that. SIGCHLD reports the parent's stops.
    let old_mask = match SigSet::all().thread_swap_mask(SigmaskHow::SIG_BLOCK) {
        Ok(m) => m,
        Err(e) => return fail(1, format!("pthread_sigmask: {e}")),
    };
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut error = None;
    let mut held_signals = 0;
    match Tracee::attach(pid, tid, stat.state != 'T' && stat.state != 't') {
        Err(e) => error = Some(e),
        Ok(mut tracee) => {
            for z in &zombies {
                let code = match stat_of(z.pid) {
                    Ok(s) if s.state == 'Z' && s.ppid == pid => s.exit_code,
                    _ => {
                        outcomes.push((z, Outcome::Vanished));
                        continue;
                    }
                };
                let flags = (libc::WNOHANG | libc::__WALL) as u64;
                match tracee.call(libc::SYS_wait4, [z.pid as u64, 0, flags, 0]) {
                    Ok(r) if r == z.pid as i64 => outcomes.push((z, Outcome::Reaped(code))),
                    Ok(r) => outcomes.push((z, Outcome::Failed(r))),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            if !matches!(error, Some(inject::Error::Gone)) {
                match tracee.release() {
                    Ok(n) => held_signals = n,
                    Err(e) => error = Some(e),
                }
            }
        }
    }
    let elapsed = started.elapsed();

    let mut reaped = 0;
    for (z, outcome) in &outcomes {
        match outcome {
            Outcome::Reaped(code) => {
                reaped += 1;
                println!("reaped {} ({}): {}; {pid} will never see this status", z.pid, z.comm, describe_status(*code));
            }
            Outcome::Vanished => println!("{} ({}): gone before its turn (reaped by its parent?)", z.pid, z.comm),
            Outcome::Failed(r) => eprintln!(
                "zreap reap: {} ({}): wait4 in {pid} returned {r}{}",
                z.pid,
                z.comm,
                if *r < 0 { format!(" ({})", nix::errno::Errno::from_raw(-*r as i32)) } else { String::new() }
            ),
        }
    }
    if reaped > 0 {
        println!(
            "{reaped} of {} zombie(s) of {name} reaped in {:.1} ms (stop to detach); the parent will never see \
             their exit statuses",
            zombies.len(),
            elapsed.as_secs_f64() * 1e3
        );
    }
    if held_signals > 0 {
        println!(
            "{held_signals} signal(s) came while {pid} ran the injected calls: held back, then delivered with their \
             original siginfo"
        );
    }
    match error {
        None => {}
        Some(inject::Error::Denied) => eprintln!("zreap reap: {}", denied_reason(pid)),
        Some(inject::Error::Gone) => eprintln!(
            "zreap reap: {name} exited while zreap worked on it: {reaped} zombie(s) reaped before that; the \
             others go to its reaper (init or the nearest subreaper)"
        ),
        Some(inject::Error::Failed(why)) => eprintln!("zreap reap: {name}: {why}"),
    }
    let code = i32::from(remaining(&requested) > 0);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = old_mask.thread_set_mask();
    code
}
