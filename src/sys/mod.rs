//! Raw system calls that are safe in a signal handler and in a forked child:
//! each only issues system calls and touches no heap, lock or thread-local
//! beyond `errno` (an [`io::Error`] made from an errno allocates nothing).
//! Wait calls go straight to the kernel, never through libc's (possibly
//! interposed) wrappers. The bottom layer of the crate: it uses nothing above it.
//!
//! ```
//! // Any exited child of this process? (None: no child at all here.)
//! assert_eq!(zreap::sys::peek_exited_child(), None);
//! ```

pub mod bare;
mod fdpass;
mod mapped;
mod procfs;
mod signals;

pub use bare::{futex_wait, futex_wake_all};
pub use fdpass::{private_fd_table, recv_message, send_message, stream_socketpair, Message, Received};
pub(crate) use mapped::{wipe_on_fork, MappedVec};
pub use procfs::{parse_stat, proc_start_time, proc_stat, read_head, ProcStat};
pub use signals::{
    arm_pdeathsig, block_all_signals_in_this_thread, reset_all_dispositions, set_raw_sigmask, spawn_pthread,
    with_all_signals_blocked,
};

use libc::{c_int, pid_t};
use std::io;
use std::os::fd::RawFd;

/// The calling thread's `errno`.
pub fn errno() -> c_int {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(value: c_int) {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = value }
}

/// Restores `errno` when dropped: used in the signal handler, whose system
/// calls must not leak their errno into the interrupted code.
pub struct ErrnoGuard(c_int);

impl ErrnoGuard {
    /// Saves the calling thread's `errno`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ErrnoGuard(errno())
    }
}

impl Drop for ErrnoGuard {
    /// Writes errno back only if it changed: after a `fork()` the page that
    /// holds it is shared with the child, and a write would cost a copy.
    fn drop(&mut self) {
        if errno() != self.0 {
            set_errno(self.0);
        }
    }
}

/// Converts a `waitid` result into the `wstatus` encoding of `waitpid`.
pub fn wstatus_from_siginfo(info: &libc::siginfo_t) -> c_int {
    // SAFETY: only called for siginfo filled by a successful waitid with
    // WEXITED, whose si_status field is valid.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    }
}

/// What `waitid` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The child exited; its pid and `waitpid`-style status.
    Exited(pid_t, c_int),
    /// Children exist but none has exited (with WNOHANG), or the wait
    /// found a ptrace stop.
    NotYet,
}

/// Raw `waitid(idtype, id, options)` (never an interposed libc wrapper, and
/// no errno written), retrying on EINTR: the child's full siginfo, or None
/// when nothing changed state (WNOHANG).
pub fn waitid_info(idtype: libc::idtype_t, id: libc::id_t, options: c_int) -> io::Result<Option<libc::siginfo_t>> {
    bare::waitid_info(idtype, id, options).map_err(io::Error::from_raw_os_error)
}

/// `waitid(idtype, id, WEXITED | extra)`: the exited child's pid and
/// `waitpid`-style status. A ptrace stop, which the kernel reports to the
/// tracer's waits for exits too, is [`Waited::NotYet`], also from a wait
/// without WNOHANG (it has taken the stop from the tracer unless WNOWAIT).
pub fn waitid(idtype: libc::idtype_t, id: libc::id_t, extra: c_int) -> io::Result<Waited> {
    Ok(match waitid_info(idtype, id, libc::WEXITED | extra)? {
        Some(info) => match exited_child(&info) {
            Some(pid) => Waited::Exited(pid, wstatus_from_siginfo(&info)),
            None => Waited::NotYet,
        },
        None => Waited::NotYet,
    })
}

/// The child whose exit `info` (from `waitid`, or a SIGCHLD's siginfo)
/// reports: None for a stop, a continue, a ptrace event, or a signal a
/// process sent. Async-signal-safe.
pub fn exited_child(info: &libc::siginfo_t) -> Option<pid_t> {
    if !matches!(info.si_code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED) {
        return None;
    }
    // SAFETY: si_pid is set for the SIGCHLD codes checked above.
    Some(unsafe { info.si_pid() }).filter(|&pid| pid > 0)
}

/// The pid of a child that has exited and is waiting to be reaped, without
/// reaping it (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`). None when no
/// child has exited, and also when the first child the kernel reports is a
/// ptrace stop rather than an exit (a tracer's stops are never taken for exits).
pub fn peek_exited_child() -> Option<pid_t> {
    exited_child(&waitid_info(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT).ok()??)
}

/// Whether child `pid` (a clone child too) has exited and is still unreaped;
/// it is not reaped here (`waitid(P_PID, WNOHANG | WNOWAIT | __WALL)`). A
/// ptrace stop is not an exit. Async-signal-safe.
pub fn exited_unreaped(pid: pid_t) -> bool {
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
    matches!(waitid_info(libc::P_PID, pid as libc::id_t, options), Ok(Some(info)) if exited_child(&info).is_some())
}

/// `pidfd_open(pid, 0)`; the fd is close-on-exec.
pub fn pidfd_open(pid: pid_t) -> io::Result<RawFd> {
    bare::pidfd_open(pid, 0).map_err(io::Error::from_raw_os_error)
}

/// Closes an fd, ignoring errors (used only on fds the library owns).
/// Async-signal-safe; writes no errno.
#[inline]
pub fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: the library owns fd and never uses it after this call.
        let _ = unsafe { bare::syscall6(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) };
    }
}

/// `epoll_create1(EPOLL_CLOEXEC)`: a new epoll set, or the errno.
/// Async-signal-safe; writes no errno.
pub fn epoll_create() -> Result<RawFd, c_int> {
    // SAFETY: creates an fd; takes a flag.
    unsafe { bare::syscall6(libc::SYS_epoll_create1, [libc::EPOLL_CLOEXEC as usize, 0, 0, 0, 0, 0]) }
        .map(|fd| fd as RawFd)
}

/// Adds `fd` to epoll set `epfd`, reporting `events` with `data`.
/// Async-signal-safe; writes no errno.
pub fn epoll_add(epfd: RawFd, fd: RawFd, events: u32, data: u64) -> Result<(), c_int> {
    let mut event = libc::epoll_event { events, u64: data };
    let args =
        [epfd as usize, libc::EPOLL_CTL_ADD as usize, fd as usize, &mut event as *mut libc::epoll_event as usize];
    // SAFETY: event is a valid epoll_event for the call.
    unsafe { bare::syscall6(libc::SYS_epoll_ctl, [args[0], args[1], args[2], args[3], 0, 0]) }.map(drop)
}

/// Removes `fd` from epoll set `epfd`. Async-signal-safe; writes no errno.
pub fn epoll_del(epfd: RawFd, fd: RawFd) {
    // SAFETY: a NULL event is allowed for EPOLL_CTL_DEL.
    let _ = unsafe {
        bare::syscall6(libc::SYS_epoll_ctl, [epfd as usize, libc::EPOLL_CTL_DEL as usize, fd as usize, 0, 0, 0])
    };
}

/// Waits up to `timeout_ms` (-1: no limit) for events of set `epfd`: how
/// many of `events` it filled (0 on a timeout, a signal or an error).
/// Async-signal-safe; writes no errno.
pub fn epoll_wait(epfd: RawFd, events: &mut [libc::epoll_event], timeout_ms: c_int) -> usize {
    let max = events.len().min(c_int::MAX as usize);
    let args = [epfd as usize, events.as_mut_ptr() as usize, max, timeout_ms as usize, 0, 8];
    // SAFETY: events has room for `max` entries; a NULL signal mask.
    unsafe { bare::syscall6(libc::SYS_epoll_pwait, args) }.unwrap_or(0)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`: a close-on-exec copy of `fd`.
pub fn dup_cloexec(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC only adds an fd to the table.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(copy)
    }
}

/// Ok for a return value other than -1, else the errno: the error shape of
/// post-fork child code, which must not make an `io::Error`'s message.
pub fn check(rc: c_int) -> Result<c_int, c_int> {
    if rc == -1 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// `setsid()`: a new session. Errors as for [`check`].
pub fn setsid() -> Result<(), c_int> {
    // SAFETY: setsid takes no arguments and only changes this process's session.
    check(unsafe { libc::setsid() }).map(drop)
}

/// `chdir(path)`. Errors as for [`check`].
pub fn chdir(path: &std::ffi::CStr) -> Result<(), c_int> {
    // SAFETY: path is a valid NUL-terminated string for the whole call.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// Adds 1 to an eventfd's counter. Async-signal-safe; writes no errno.
pub fn eventfd_signal(fd: RawFd) {
    let _ = bare::write(fd, &1u64.to_ne_bytes());
}

/// Resets an eventfd's counter to 0 (it is non-blocking). Async-signal-safe;
/// writes no errno.
pub fn eventfd_drain(fd: RawFd) {
    let _ = bare::read(fd, &mut [0; 8]);
}
