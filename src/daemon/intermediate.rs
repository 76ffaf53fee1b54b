//! The forked side of `daemonize`: the intermediate (new session, fork the
//! daemon, exit) and the daemon's setup.
//!
//! Post-fork code: everything here runs in a forked child and is
//! async-signal-safe: only system calls, on memory prepared before the fork.

use super::pidfile::write_pidfile;
use super::{send_report, DaemonFlags, Daemonized, Plan, READY_FD, READY_PID};
use crate::{reaper, sys};
use libc::{c_int, pid_t};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::SeqCst;

/// The intermediate: new session, fork the daemon, exit. Returns only in the
/// daemon. Async-signal-safe.
pub(super) fn intermediate(plan: &Plan, report_fd: RawFd) -> io::Result<Daemonized> {
    // SAFETY: plain system calls in a single-threaded fork child.
    unsafe {
        if libc::setsid() == -1 {
            send_report(report_fd, sys::errno());
            libc::_exit(1);
        }
        let leader = libc::getpid();
        match libc::fork() {
            -1 => {
                send_report(report_fd, sys::errno());
                libc::_exit(1)
            }
            0 => {
                let error = setup_daemon(plan, report_fd, leader);
                if error != 0 {
                    send_report(report_fd, error);
                    libc::_exit(1);
                }
                if plan.flags.contains(DaemonFlags::WAIT_READY) {
                    READY_PID.store(libc::getpid(), SeqCst);
                    READY_FD.store(report_fd, SeqCst);
                } else {
                    send_report(report_fd, 0);
                    sys::close(report_fd);
                }
                Ok(Daemonized::Daemon)
            }
            _ => libc::_exit(0),
        }
    }
}

/// Sets the daemon up; returns 0 or the errno of the step that failed.
/// Async-signal-safe: only system calls, on memory prepared before the fork.
fn setup_daemon(plan: &Plan, report_fd: RawFd, leader: pid_t) -> c_int {
    // SAFETY (whole block): plain system calls in a single-threaded fork child,
    // on buffers owned by the plan.
    unsafe {
        // Wait for the session leader to go: its exit may send SIGHUP to the
        // orphaned process group, which must not reach the daemon.
        while libc::getppid() == leader {
            libc::sched_yield();
        }
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGHUP, &ignore, std::ptr::null_mut());
        reset_dispositions_keeping_ignored(plan.hup_ignored);

        if !plan.flags.contains(DaemonFlags::NO_CHDIR) && libc::chdir(plan.workdir.as_ptr()) == -1 {
            return sys::errno();
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        if !plan.flags.contains(DaemonFlags::KEEP_STDIO) {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null == -1 {
                return sys::errno();
            }
            for fd in 0..3 {
                if libc::dup2(null, fd) == -1 {
                    return sys::errno();
                }
            }
            if null > 2 {
                sys::close(null);
            }
        }
        if !plan.flags.contains(DaemonFlags::KEEP_FDS) {
            close_fds_except(report_fd);
            reaper::forget_fds();
        }
        // Last, so that a failed setup leaves no pidfile behind.
        if let Some(path) = &plan.pidfile {
            if let Err(e) = write_pidfile(path) {
                return e;
            }
        }
        sys::set_raw_sigmask(0);
    }
    0
}

/// Handled signals go back to SIG_DFL; ignored ones stay ignored (as across
/// exec). SIGHUP, ignored by us during setup, follows the caller's choice.
/// Async-signal-safe.
fn reset_dispositions_keeping_ignored(hup_ignored: bool) {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: querying and setting dispositions with valid structs.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == -1 {
                continue;
            }
            let keep = if sig == libc::SIGHUP { hup_ignored } else { old.sa_sigaction == libc::SIG_IGN };
            if !keep {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
    for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: as above.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction != libc::SIG_IGN {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Closes every fd above 2 but `keep` (close_range where the kernel has it).
/// Async-signal-safe.
fn close_fds_except(keep: RawFd) {
    if keep >= 3 {
        close_range(3, keep as u32 - 1);
        close_range(keep as u32 + 1, u32::MAX);
    } else {
        close_range(3, u32::MAX);
    }
}

fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    // SAFETY: close_range only closes fds; the caller keeps what it needs.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc == -1 {
        // SAFETY: getrlimit fills a valid struct.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        let end = (limit.rlim_cur.min(1 << 20) as u32).min(last.saturating_add(1));
        for fd in first..end {
            sys::close(fd as RawFd);
        }
    }
}
