//! The forked side of `daemonize`: the intermediate (new session, fork the
//! daemon, exit) and the daemon's setup.
//!
//! Post-fork code: everything here runs in a forked child and is
//! async-signal-safe: only system calls, on memory prepared before the fork.

use super::pidfile::write_pidfile;
use super::{send_report, DaemonFlags, Daemonized, Plan, READY_FD, READY_PID};
use crate::{reaper, sys};
use libc::{c_int, mode_t, pid_t};
use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::SeqCst;

/// The intermediate: new session, fork the daemon, exit. Returns only in the
/// daemon. Async-signal-safe.
///
/// # Safety
/// Only in the child of `run`'s fork, which is single-threaded and owns
/// `report_fd` (the daemon's end of the report socket). The intermediate ends
/// with `_exit`; the daemon closes fds and resets signal dispositions other
/// code may rely on (see [`setup_daemon`]) and then returns to the caller of
/// `daemonize`, which is bound by that function's contract.
pub(super) unsafe fn intermediate(plan: &Plan, report_fd: RawFd) -> io::Result<Daemonized> {
    if let Err(e) = sys::setsid() {
        fail(report_fd, e);
    }
    let leader = getpid();
    // SAFETY: this process is single-threaded (our caller's contract), so the
    // child may run any code; it runs only async-signal-safe code until it
    // returns in the daemon.
    match unsafe { libc::fork() } {
        -1 => fail(report_fd, sys::errno()),
        0 => {
            // SAFETY: we are the daemon, the single-threaded child of the fork
            // above, and report_fd is still ours.
            let error = unsafe { setup_daemon(plan, report_fd, leader) };
            if error != 0 {
                fail(report_fd, error);
            }
            if plan.flags.contains(DaemonFlags::WAIT_READY) {
                READY_PID.store(getpid(), SeqCst);
                READY_FD.store(report_fd, SeqCst);
            } else {
                send_report(report_fd, 0, false);
                sys::close(report_fd);
            }
            reaper::resume_in_daemon();
            Ok(Daemonized::Daemon)
        }
        _ => exit_now(0),
    }
}

/// Reports `error` to the caller's process and exits with status 1.
/// Async-signal-safe.
fn fail(report_fd: RawFd, error: c_int) -> ! {
    send_report(report_fd, error, true);
    exit_now(1)
}

/// Sets the daemon up; returns 0 or the errno of the step that failed.
/// Async-signal-safe: only system calls, on memory prepared before the fork.
///
/// # Safety
/// Only in the daemon: the single-threaded child of the intermediate's fork,
/// which owns `report_fd`. Unless the plan says otherwise it replaces fds
/// 0..=2 and closes every other fd but `report_fd`, which other code in the
/// process may believe it owns; it also resets every signal disposition.
unsafe fn setup_daemon(plan: &Plan, report_fd: RawFd, leader: pid_t) -> c_int {
    // Wait for the session leader to go: its exit may send SIGHUP to the
    // orphaned process group, which must not reach the daemon.
    while getppid() == leader {
        sched_yield();
    }
    set_disposition(libc::SIGHUP, Disposition::Ignore);
    reset_dispositions_keeping_ignored(plan.hup_ignored);

    if !plan.flags.contains(DaemonFlags::NO_CHDIR) {
        if let Err(e) = sys::chdir(&plan.workdir) {
            return e;
        }
    }
    if let Some(mask) = plan.umask {
        umask(mask);
    }
    if !plan.flags.contains(DaemonFlags::KEEP_STDIO) {
        let null = match open_cloexec(c"/dev/null", libc::O_RDWR) {
            Ok(fd) => fd,
            Err(e) => return e,
        };
        for fd in 0..3 {
            if let Err(e) = dup2(null, fd) {
                return e;
            }
        }
        if null > 2 {
            sys::close(null);
        }
    }
    if !plan.flags.contains(DaemonFlags::KEEP_FDS) {
        // SAFETY: we are the daemon (our caller's contract): every fd but the
        // standard ones and report_fd is to be closed, whoever opened it.
        unsafe { close_fds_except(report_fd) };
        // SAFETY: the single-threaded daemon has just closed the library's fds.
        unsafe { reaper::forget_fds() };
    }
    // Last, so that a failed setup leaves no pidfile behind.
    if let Some(path) = &plan.pidfile {
        if let Err(e) = write_pidfile(path) {
            return e;
        }
    }
    sys::set_raw_sigmask(0);
    0
}

/// Handled signals go back to SIG_DFL; ignored ones stay ignored (as across
/// exec). SIGHUP, ignored by us during setup, follows the caller's choice.
/// zreap's own SIGCHLD handler stays: the daemon carries over the library's
/// state, which counts it installed. Async-signal-safe.
fn reset_dispositions_keeping_ignored(hup_ignored: bool) {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let Some(old) = disposition(sig) else { continue };
        let keep = match sig {
            libc::SIGHUP => hup_ignored,
            libc::SIGCHLD => old == libc::SIG_IGN || reaper::is_sigchld_handler(old),
            _ => old == libc::SIG_IGN,
        };
        if !keep {
            set_disposition(sig, Disposition::Default);
        }
    }
    for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        if disposition(sig).is_some_and(|old| old != libc::SIG_IGN) {
            set_disposition(sig, Disposition::Default);
        }
    }
}

/// The dispositions the daemon sets: never a handler.
#[derive(Clone, Copy)]
enum Disposition {
    Default,
    Ignore,
}

/// The current disposition of `sig` (`sa_sigaction`), or None if sigaction
/// fails. Async-signal-safe.
fn disposition(sig: c_int) -> Option<libc::sighandler_t> {
    // SAFETY: libc::sigaction is plain data; all-zero is a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: no new action (null); old is a valid struct for the kernel to fill.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    (rc == 0).then_some(old.sa_sigaction)
}

/// Sets `sig` to SIG_DFL or SIG_IGN, with an empty mask and no flags; errors
/// are ignored. Async-signal-safe.
fn set_disposition(sig: c_int, to: Disposition) {
    // SAFETY: libc::sigaction is plain data; all-zero is a valid value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = match to {
        Disposition::Default => libc::SIG_DFL,
        Disposition::Ignore => libc::SIG_IGN,
    };
    // SAFETY: action is a valid struct whose handler is SIG_DFL or SIG_IGN, so
    // no code of ours can run as a handler; the old action is not requested.
    unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) };
}

/// Closes every fd above 2 but `keep` (close_range where the kernel has it).
/// Async-signal-safe.
///
/// # Safety
/// As for [`close_range`]: nothing may use the closed fds afterwards.
unsafe fn close_fds_except(keep: RawFd) {
    if keep >= 3 {
        // SAFETY: passed on from our caller.
        unsafe { close_range(3, keep as u32 - 1) };
        // SAFETY: passed on from our caller.
        unsafe { close_range(keep as u32 + 1, u32::MAX) };
    } else {
        // SAFETY: passed on from our caller.
        unsafe { close_range(3, u32::MAX) };
    }
}

/// Closes fds `first..=last`, with a loop of close() where the kernel has no
/// close_range. Async-signal-safe.
///
/// # Safety
/// Nothing may use the closed fds afterwards (they may belong to other code:
/// only the daemon, about to run as a fresh process, may do this).
unsafe fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    // SAFETY: close_range takes integer arguments and only closes fds, which
    // our caller gives up.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc == -1 {
        let end = (open_files_limit().min(1 << 20) as u32).min(last.saturating_add(1));
        for fd in first..end {
            sys::close(fd as RawFd);
        }
    }
}

/// The soft RLIMIT_NOFILE, or 0 if getrlimit fails. Async-signal-safe.
fn open_files_limit() -> libc::rlim_t {
    // SAFETY: libc::rlimit is plain data; all-zero is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: limit is a valid struct for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

/// `getpid()`. Async-signal-safe.
fn getpid() -> pid_t {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// `getppid()`. Async-signal-safe.
fn getppid() -> pid_t {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { libc::getppid() }
}

/// `sched_yield()`. Async-signal-safe.
fn sched_yield() {
    // SAFETY: sched_yield takes no arguments and only gives up the CPU.
    unsafe { libc::sched_yield() };
}

/// `umask(mask)`; the previous mask is dropped. Async-signal-safe.
fn umask(mask: mode_t) {
    // SAFETY: an integer argument; only this process's file mode mask changes.
    unsafe { libc::umask(mask) };
}

/// `open(path, flags | O_CLOEXEC)`: a new fd. Async-signal-safe.
fn open_cloexec(path: &CStr, flags: c_int) -> Result<RawFd, c_int> {
    // SAFETY: path is a valid NUL-terminated string for the whole call; no
    // O_CREAT, so no mode argument is read.
    sys::check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })
}

/// `dup2(from, to)`, for the standard fds `to` the daemon points at
/// /dev/null. Async-signal-safe.
fn dup2(from: RawFd, to: RawFd) -> Result<(), c_int> {
    if from == to {
        // dup2 onto itself keeps close-on-exec: clear it (/dev/null landed on
        // a standard fd that was closed).
        // SAFETY: integer arguments on an fd the daemon owns.
        return sys::check(unsafe { libc::fcntl(to, libc::F_SETFD, 0) }).map(drop);
    }
    // SAFETY: integer arguments; the only fd replaced is `to`, one of the
    // daemon's standard fds, which setup_daemon's caller gives up.
    sys::check(unsafe { libc::dup2(from, to) }).map(drop)
}

/// `_exit(code)`: ends the process at once, without atexit handlers or stdio
/// flushes (those belong to the caller's process). Async-signal-safe.
fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit takes an integer and never returns; skipping destructors
    // and exit handlers only leaks.
    unsafe { libc::_exit(code) }
}
