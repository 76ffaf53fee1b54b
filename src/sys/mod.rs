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

mod fdpass;
mod futex;
mod mapped;
mod procfs;
mod signals;

pub use fdpass::{private_fd_table, recv_message, send_message, stream_socketpair, Message, Received};
pub use futex::{futex_wait, futex_wake_all};
pub(crate) use mapped::MappedVec;
pub use procfs::{proc_start_time, start_time_from_stat};
pub use signals::{arm_pdeathsig, block_all_signals_in_this_thread, reset_all_dispositions, set_raw_sigmask};

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
    fn drop(&mut self) {
        set_errno(self.0);
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
    /// Children exist but none has exited (only with WNOHANG).
    NotYet,
}

/// Raw `waitid(idtype, id, options)` (never an interposed libc wrapper),
/// retrying on EINTR: the child's full siginfo, or None when nothing changed
/// state (WNOHANG).
pub fn waitid_info(idtype: libc::idtype_t, id: libc::id_t, options: c_int) -> io::Result<Option<libc::siginfo_t>> {
    loop {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info is a valid, writable siginfo_t; the rusage argument is NULL.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                idtype,
                id,
                &mut info as *mut libc::siginfo_t,
                options,
                std::ptr::null_mut::<libc::rusage>(),
            )
        };
        if rc == -1 {
            match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::EINTR) => continue,
                e => return Err(e),
            }
        }
        // SAFETY: waitid succeeded, so si_pid is valid (0 when nothing changed).
        return Ok((unsafe { info.si_pid() } != 0).then_some(info));
    }
}

/// `waitid(idtype, id, WEXITED | extra)`: the exited child's pid and
/// `waitpid`-style status.
pub fn waitid(idtype: libc::idtype_t, id: libc::id_t, extra: c_int) -> io::Result<Waited> {
    Ok(match waitid_info(idtype, id, libc::WEXITED | extra)? {
        // SAFETY: a siginfo filled by waitid.
        Some(info) => Waited::Exited(unsafe { info.si_pid() }, wstatus_from_siginfo(&info)),
        None => Waited::NotYet,
    })
}

/// The pid of a child that has exited and is waiting to be reaped, without
/// reaping it (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`). None when no
/// child has exited, and also when the first child the kernel reports is a
/// ptrace stop rather than an exit (a tracer's stops are never taken for exits).
pub fn peek_exited_child() -> Option<pid_t> {
    let info = waitid_info(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT).ok()??;
    // SAFETY: a siginfo filled by a successful waitid.
    matches!(info.si_code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED).then(|| unsafe { info.si_pid() })
}

/// Whether child `pid` (a clone child too) has exited and is still unreaped;
/// it is not reaped here (`waitid(P_PID, WNOHANG | WNOWAIT | __WALL)`).
pub fn exited_unreaped(pid: pid_t) -> bool {
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
    matches!(waitid_info(libc::P_PID, pid as libc::id_t, options), Ok(Some(_)))
}

/// `pidfd_open(pid, 0)`; the fd is close-on-exec.
pub fn pidfd_open(pid: pid_t) -> io::Result<RawFd> {
    // SAFETY: pidfd_open takes two integer arguments and returns a new fd or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as RawFd)
    }
}

/// Closes an fd, ignoring errors (used only on fds the library owns).
pub fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: the library owns fd and never uses it after this call.
        unsafe { libc::close(fd) };
    }
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

/// Adds 1 to an eventfd's counter.
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64; an eventfd accepts exactly that.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd's counter to 0 (it is non-blocking).
pub fn eventfd_drain(fd: RawFd) {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64.
    unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
}
