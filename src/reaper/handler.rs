//! The SIGCHLD handler and its installation.
//!
//! Signal context: [`on_sigchld`] is the handler itself.

use super::pass;
use crate::sys::{self, ErrnoGuard};
use libc::{c_int, c_void, pid_t, siginfo_t};
use std::io;

/// The SIGCHLD handler. Async-signal-safe: it reaches only atomics, memory
/// allocated before installation and raw system calls (waitpid, waitid,
/// epoll_wait, epoll_ctl, close, write), never blocks (the gate is only tried),
/// and restores errno before returning. It loops until no exited child in scope
/// is left, because SIGCHLD does not queue.
extern "C" fn on_sigchld(_signal: c_int, info: *mut siginfo_t, _context: *mut c_void) {
    let _errno = ErrnoGuard::new();
    pass::pass_from_signal(exited_pid(info));
}

/// The child whose exit the kernel reported with this SIGCHLD; None for a
/// SIGCHLD sent by a process (kill, sigqueue) or for another event.
/// Async-signal-safe.
fn exited_pid(info: *const siginfo_t) -> Option<pid_t> {
    // SAFETY: the kernel passes a valid siginfo (or none) to an SA_SIGINFO
    // handler.
    sys::exited_child(unsafe { info.as_ref() }?)
}

/// The handler's entry as `sa_sigaction` holds it.
pub(super) fn handler_address() -> libc::sighandler_t {
    on_sigchld as extern "C" fn(c_int, *mut siginfo_t, *mut c_void) as libc::sighandler_t
}

/// Installs [`on_sigchld`] for SIGCHLD with SA_SIGINFO, SA_RESTART and
/// SA_NOCLDSTOP and returns the disposition it replaced.
pub(super) fn install() -> io::Result<libc::sigaction> {
    // SAFETY: sigaction is plain data; all-zero is a valid starting value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler_address();
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_NOCLDSTOP;
    // SAFETY: sa_mask is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: see above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to valid sigaction structs; the handler is
    // async-signal-safe and everything it touches exists before this call.
    if unsafe { libc::sigaction(libc::SIGCHLD, &action, &mut old) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// Whether [`on_sigchld`] is the current SIGCHLD disposition (the program
/// may have replaced it, or set SIG_IGN, since [`install`]).
pub(super) fn is_installed() -> io::Result<bool> {
    // SAFETY: sigaction is plain data; all-zero is a valid starting value.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a NULL new action only queries; current is a valid out-pointer.
    if unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut current) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(current.sa_sigaction == handler_address())
}

/// Puts back a disposition returned by [`install`].
pub(super) fn restore(old: &libc::sigaction) -> io::Result<()> {
    // SAFETY: old is a disposition the kernel gave us earlier.
    if unsafe { libc::sigaction(libc::SIGCHLD, old, std::ptr::null_mut()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether SIGCHLD is blocked in every thread of this process (read from
/// `/proc/self/task/*/status`), so that no handler could ever run. False when
/// that cannot be read.
pub(super) fn blocked_everywhere() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return false };
    let bit = 1u64 << (libc::SIGCHLD - 1);
    let mut seen = false;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
        match blocked {
            Some(mask) if mask & bit != 0 => seen = true,
            _ => return false,
        }
    }
    seen
}
