//! `zreap ps`: every zombie on the machine, grouped by parent, with a diagnosis.

use crate::procfs::{self, has_sigchld, ReadError, Stat, Thread};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One zombie.
#[derive(Debug, Serialize)]
pub struct Zombie {
    pub pid: i32,
    pub comm: String,
    /// Seconds since the process started (the kernel does not record when it exited).
    pub age_secs: Option<f64>,
    /// Threads of the zombie that have not exited (state `Zl`): it cannot be reaped yet.
    pub live_threads: Vec<Thread>,
}

/// The parent of a group of zombies.
#[derive(Debug, Serialize)]
pub struct Parent {
    pub pid: i32,
    pub comm: Option<String>,
    pub cmdline: String,
    pub state: Option<String>,
}

/// Cause and fix for one group.
#[derive(Debug, Serialize)]
pub struct Diagnosis {
    /// Stable machine-readable id: `never-waits`, `handler-leaks`, `signalfd-not-read`,
    /// `blocked-no-signalfd`, `parent-stopped`, `zombie-thread-stuck`, `pid-ns-init`,
    /// `sigchld-ignored`, `parent-gone`.
    pub cause: &'static str,
    pub summary: String,
    pub fix: String,
    pub details: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub parent: Parent,
    pub count: usize,
    pub zombies: Vec<Zombie>,
    pub diagnosis: Diagnosis,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub zombies: usize,
    pub groups: Vec<Group>,
}

/// Writes a note about an entry that could not be read.
fn note(what: &str) {
    eprintln!("zreap: skipped {what}");
}

/// All processes' stat lines; vanished ones skipped, unreadable ones noted.
fn scan() -> Vec<Stat> {
    procfs::numeric_entries(Path::new("/proc"))
        .into_iter()
        .filter_map(|pid| match procfs::stat_at(Path::new(&format!("/proc/{pid}/stat"))) {
            Ok(s) => Some(s),
            Err(ReadError::Gone) => None,
            Err(ReadError::Unreadable(why)) => {
                note(&why);
                None
            }
        })
        .collect()
}

/// Builds the report. `only`: keep the zombies whose parent is this pid, or
/// this pid itself if it is a zombie. `Err` when `only` names no process.
pub fn report(only: Option<i32>) -> Result<Report, String> {
    let all = scan();
    if let Some(p) = only {
        if !all.iter().any(|s| s.pid == p) {
            return Err(format!("no process {p}"));
        }
    }
    let uptime = procfs::read(Path::new("/proc/uptime")).ok().and_then(|t| procfs::parse_uptime(&t));
    let tck = procfs::clk_tck();

    let mut by_parent: BTreeMap<i32, Vec<Zombie>> = BTreeMap::new();
    for s in all.iter().filter(|s| s.state == 'Z') {
        if let Some(p) = only {
            if s.ppid != p && s.pid != p {
                continue;
            }
        }
        let live_threads: Vec<Thread> =
            procfs::threads(s.pid).into_iter().filter(|t| t.state != "Z" && t.state != "X").collect();
        let age_secs = uptime.map(|u| ((u - s.starttime as f64 / tck).max(0.0) * 10.0).round() / 10.0);
        by_parent.entry(s.ppid).or_default().push(Zombie { pid: s.pid, comm: s.comm.clone(), age_secs, live_threads });
    }

    let groups: Vec<Group> = by_parent
        .into_iter()
        .map(|(ppid, zombies)| {
            // One fresh read of the parent, for both what is shown and the diagnosis.
            let pstat = procfs::stat_at(Path::new(&format!("/proc/{ppid}/stat")));
            let parent = Parent {
                pid: ppid,
                comm: pstat.as_ref().ok().map(|s| s.comm.clone()),
                cmdline: procfs::cmdline(ppid),
                state: pstat.as_ref().ok().map(|s| s.state.to_string()),
            };
            let diagnosis = diagnose(ppid, pstat, &zombies, &all);
            Group { parent, count: zombies.len(), zombies, diagnosis }
        })
        .collect();
    Ok(Report { zombies: groups.iter().map(|g| g.count).sum(), groups })
}

fn describe_thread(t: &Thread) -> String {
    format!("thread {} ({}) state {} wchan {}", t.tid, t.name, t.state, t.wchan.as_deref().unwrap_or("-"))
}

/// The fix for the zombies already there, without restarting the parent.
fn reap_now(ppid: i32) -> String {
    format!(
        "the zombies already there, without restarting it: zreap reap --pid {ppid} (it loses their exit statuses); "
    )
}

const KILL_PARENT: &str =
    "killing the parent hands its zombies to init (or the nearest subreaper), which reaps them if it is a real init";

/// Tells why the zombies of `ppid` are not reaped.
fn diagnose(ppid: i32, pstat: Result<Stat, ReadError>, zombies: &[Zombie], all: &[Stat]) -> Diagnosis {
    let mut details = Vec::new();

    // A zombie whose main thread exited while another thread lives cannot be
    // reaped by anyone yet.
    let stuck: Vec<&Zombie> = zombies.iter().filter(|z| !z.live_threads.is_empty()).collect();
    for z in &stuck {
        for t in &z.live_threads {
            details.push(format!("zombie {} ({}): {}", z.pid, z.comm, describe_thread(t)));
        }
        // A thread waiting in vfork() shows wchan `kernel_clone` (or a vfork symbol).
        let vfork = z
            .live_threads
            .iter()
            .any(|t| t.state == "D" && t.wchan.as_deref().is_some_and(|w| w.contains("vfork") || w.contains("clone")));
        if vfork {
            for c in all.iter().filter(|c| c.ppid == z.pid && c.state != 'Z') {
                details.push(format!(
                    "zombie {}: its thread waits for vfork child {} ({}, state {}) to exec or exit",
                    z.pid, c.pid, c.comm, c.state
                ));
            }
        }
    }
    if !stuck.is_empty() && stuck.len() == zombies.len() {
        let d_threads: Vec<String> = stuck
            .iter()
            .flat_map(|z| z.live_threads.iter())
            .filter(|t| t.state == "D")
            .map(|t| format!("{} ({}) in {}", t.tid, t.name, t.wchan.as_deref().unwrap_or("?")))
            .collect();
        let summary = if d_threads.is_empty() {
            "the zombie's main thread exited while other threads still run (state Zl): it is not reapable yet"
                .to_string()
        } else {
            format!(
                "the zombie's main thread exited while another thread is stuck in D state (state Zl): {}; \
                 it is not reapable yet, not even by init",
                d_threads.join(", ")
            )
        };
        return Diagnosis {
            cause: "zombie-thread-stuck",
            summary,
            fix: "find what the stuck thread waits for (its wchan): a vfork child that neither execs nor exits \
                  (kill that child), a hung NFS/FUSE mount or device; the zombie becomes reapable once the \
                  thread leaves the kernel. Killing the parent does not help"
                .to_string(),
            details,
        };
    }

    let pstat = match pstat {
        Ok(s) => s,
        Err(e) => {
            let why = match e {
                ReadError::Gone => "it exited while being read".to_string(),
                ReadError::Unreadable(w) => w,
            };
            return Diagnosis {
                cause: "parent-gone",
                summary: format!("the parent {ppid} could not be read: {why}"),
                fix: "run zreap ps again: the zombies move to init or a subreaper".to_string(),
                details,
            };
        }
    };
    let status = match procfs::read(Path::new(&format!("/proc/{ppid}/status"))) {
        Ok(t) => procfs::parse_status(&t),
        Err(ReadError::Unreadable(w)) => {
            note(&w);
            Default::default()
        }
        Err(ReadError::Gone) => Default::default(),
    };
    let threads = procfs::threads(ppid);
    let thread_lines = || threads.iter().map(describe_thread).collect::<Vec<_>>();

    if pstat.state == 'T' || pstat.state == 't' {
        let tracer = status.tracer_pid.filter(|&t| t != 0);
        let mut summary = format!("the parent is stopped (state {})", pstat.state);
        if let Some(t) = tracer {
            let comm = all.iter().find(|s| s.pid == t).map(|s| s.comm.as_str()).unwrap_or("?");
            summary = format!("the parent is traced by {t} ({comm}) and stopped (state {})", pstat.state);
        }
        return Diagnosis {
            cause: "parent-stopped",
            summary: format!("{summary}: a stopped process runs no handler and calls no wait"),
            fix: if tracer.is_some() {
                "let the tracer (a debugger) continue or detach it, or end the tracer: SIGCONT does not \
                 resume a tracing stop"
                    .to_string()
            } else {
                format!(
                    "kill -CONT {ppid} (it reaps once it runs, if it reaps at all; if it does not: zreap reap \
                     --pid {ppid})"
                )
            },
            details,
        };
    }

    let sig_disposition = if has_sigchld(status.sig_cgt) {
        "SIGCHLD caught by a handler"
    } else if has_sigchld(status.sig_ign) {
        "SIGCHLD ignored"
    } else {
        "SIGCHLD at its default"
    };

    if status.nspid.last() == Some(&1) {
        details.push(format!("NSpid: {:?}; {sig_disposition}", status.nspid));
        return Diagnosis {
            cause: "pid-ns-init",
            summary: if status.nspid.len() > 1 {
                format!(
                    "the parent is PID 1 of a pid namespace (pid {ppid} outside) and does not reap: the orphans \
                     of the whole namespace end up here"
                )
            } else {
                "the parent is PID 1 of this pid namespace and does not reap: every orphan ends up here".to_string()
            },
            fix: "run a real init as PID 1: zreap run --init -- CMD (or docker run --init, tini); or make the \
                  program reap every child with a waitpid(-1, WNOHANG) loop (zreap_install(0) does that)"
                .to_string(),
            details,
        };
    }

    // SIGCHLD blocked in every thread: only a signalfd or sigwait can see it.
    let statuses = procfs::thread_statuses(ppid);
    let blocked =
        if statuses.is_empty() { has_sigchld(status.sig_blk) } else { statuses.iter().all(|s| has_sigchld(s.sig_blk)) };
    let pending = has_sigchld(status.sig_pnd) || has_sigchld(status.shd_pnd);
    if blocked {
        let sfds = match procfs::signalfds(ppid) {
            Ok(v) => v,
            Err(ReadError::Unreadable(w)) => {
                note(&w);
                Vec::new()
            }
            Err(ReadError::Gone) => Vec::new(),
        };
        let chld_fds: Vec<i32> = sfds.iter().filter(|(_, m)| m & procfs::SIGCHLD_BIT != 0).map(|(fd, _)| *fd).collect();
        if pending {
            details.push("SIGCHLD is pending, undelivered".to_string());
        }
        if !chld_fds.is_empty() {
            details.push(format!("signalfd for SIGCHLD: fd {:?}", chld_fds));
            details.extend(thread_lines());
            return Diagnosis {
                cause: "signalfd-not-read",
                summary: "the parent blocks SIGCHLD and has a signalfd for it, but its loop does not read it \
                          (busy or stuck elsewhere: see the threads' states and wchan)"
                    .to_string(),
                fix: "make the event loop poll the signalfd and, on each read, reap with waitpid(-1, WNOHANG) \
                      until it returns 0 (one read may stand for many exits); find what the loop is stuck on"
                    .to_string(),
                details,
            };
        }
        let sigwaiters: Vec<String> = threads
            .iter()
            .filter(|t| t.wchan.as_deref().is_some_and(|w| w.contains("sigtimedwait") || w.contains("sigsuspend")))
            .map(describe_thread)
            .collect();
        if !sigwaiters.is_empty() {
            details.push(format!("waiting for signals now: {}", sigwaiters.join("; ")));
        }
        details.extend(thread_lines());
        return Diagnosis {
            cause: "blocked-no-signalfd",
            summary: "the parent blocks SIGCHLD in every thread and has no signalfd for it: nothing will ever \
                      collect these children"
                .to_string(),
            fix: "unblock SIGCHLD and reap with a waitpid(-1, WNOHANG) loop (or zreap_install(0)), or read it \
                  from a signalfd in the event loop; "
                .to_string()
                + &reap_now(ppid)
                + KILL_PARENT,
            details,
        };
    }

    if has_sigchld(status.sig_cgt) {
        return Diagnosis {
            cause: "handler-leaks",
            summary: "the parent catches SIGCHLD but leaves zombies: a handler that reaps one child per signal \
                      (wait() once) loses exits, because SIGCHLD does not queue"
                .to_string(),
            fix: "in the handler, loop while (waitpid(-1, &status, WNOHANG) > 0); or replace the handler with \
                  zreap_install(0); unmodified program: zreap run --reap handler -- CMD (LD_PRELOAD shim)"
                .to_string(),
            details,
        };
    }

    if has_sigchld(status.sig_ign) {
        return Diagnosis {
            cause: "sigchld-ignored",
            summary: "SIGCHLD is ignored now (children exiting from now on are not kept), but these zombies \
                      exited before that"
                .to_string(),
            fix: "call waitpid(-1, &status, WNOHANG) in a loop once; ".to_string() + &reap_now(ppid) + KILL_PARENT,
            details,
        };
    }

    if pending {
        details.push("SIGCHLD is pending, undelivered".to_string());
    }
    Diagnosis {
        cause: "never-waits",
        summary: "the parent never waits for its children and installed no SIGCHLD handler \
                  (SIGCHLD at its default, not blocked)"
            .to_string(),
        fix: "reap with waitpid(-1, &status, WNOHANG) in a loop (or zreap_install(0)); unmodified program: \
              zreap run --reap all -- CMD; "
            .to_string()
            + &reap_now(ppid)
            + KILL_PARENT,
        details,
    }
}

fn fmt_age(a: Option<f64>) -> String {
    match a {
        None => "?".to_string(),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) if s < 3600.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) if s < 86400.0 => format!("{}h{:02}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64),
        Some(s) => format!("{}d{:02}h", (s / 86400.0) as u64, ((s % 86400.0) / 3600.0) as u64),
    }
}

/// Human-readable output.
pub fn print_text(r: &Report) {
    if r.groups.is_empty() {
        println!("no zombies");
        return;
    }
    let parents = r.groups.len();
    println!(
        "{} zombie{} under {} parent{}",
        r.zombies,
        if r.zombies == 1 { "" } else { "s" },
        parents,
        if parents == 1 { "" } else { "s" }
    );
    for g in &r.groups {
        let p = &g.parent;
        println!();
        println!(
            "parent {} ({}) state {}{}{}",
            p.pid,
            p.comm.as_deref().unwrap_or("?"),
            p.state.as_deref().unwrap_or("?"),
            if p.cmdline.is_empty() { "" } else { ": " },
            p.cmdline
        );
        println!("  {} zombie{}:", g.count, if g.count == 1 { "" } else { "s" });
        for z in &g.zombies {
            let extra = if z.live_threads.is_empty() {
                String::new()
            } else {
                format!(", {} live thread(s)", z.live_threads.len())
            };
            println!("    {:>7}  {:<16} age {}{}", z.pid, z.comm, fmt_age(z.age_secs), extra);
        }
        let d = &g.diagnosis;
        println!("  cause [{}]: {}", d.cause, d.summary);
        for line in &d.details {
            println!("    {line}");
        }
        println!("  fix: {}", d.fix);
    }
}

pub fn run(pid: Option<i32>, json: bool) -> i32 {
    let r = match report(pid) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zreap ps: {e}");
            return 2;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serialize"));
    } else {
        print_text(&r);
    }
    if r.zombies > 0 {
        1
    } else {
        0
    }
}
