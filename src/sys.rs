//! Thin wrappers over the raw system calls the library needs and nix does not
//! offer in an async-signal-safe form. Wait calls go straight to the kernel,
//! never through libc's (possibly interposed) wrappers. The preload shim
//! shares this file. Every function here is async-signal-safe:
//! it only issues system calls and touches no heap, lock or thread-local beyond
//! `errno`.

use libc::{c_int, pid_t};
use nix::errno::Errno;
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
pub enum Waited {
    /// The child exited; its pid and `waitpid`-style status.
    Exited(pid_t, c_int),
    /// Children exist but none has exited (only with WNOHANG).
    NotYet,
}

/// Raw `waitid(idtype, id, options)` (never an interposed libc wrapper),
/// retrying on EINTR: the child's full siginfo, or None when nothing changed
/// state (WNOHANG).
pub fn waitid_info(idtype: libc::idtype_t, id: libc::id_t, options: c_int) -> Result<Option<libc::siginfo_t>, Errno> {
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
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        // SAFETY: waitid succeeded, so si_pid is valid (0 when nothing changed).
        return Ok((unsafe { info.si_pid() } != 0).then_some(info));
    }
}

/// `waitid(idtype, id, WEXITED | extra)`: the exited child's pid and
/// `waitpid`-style status.
pub fn waitid(idtype: libc::idtype_t, id: libc::id_t, extra: c_int) -> Result<Waited, Errno> {
    Ok(match waitid_info(idtype, id, libc::WEXITED | extra)? {
        // SAFETY: a siginfo filled by waitid.
        Some(info) => Waited::Exited(unsafe { info.si_pid() }, wstatus_from_siginfo(&info)),
        None => Waited::NotYet,
    })
}

/// `wait4(pid, WNOHANG)` as a raw system call: `Some((pid, status))` when a
/// child was reaped.
pub fn waitpid_nohang(pid: pid_t) -> Option<(pid_t, c_int)> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: status is a valid out-pointer; the rusage argument is NULL.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_wait4,
                pid,
                &mut status as *mut c_int,
                libc::WNOHANG,
                std::ptr::null_mut::<libc::rusage>(),
            )
        };
        if rc > 0 {
            return Some((rc as pid_t, status));
        }
        if rc == -1 && Errno::last() == Errno::EINTR {
            continue;
        }
        return None;
    }
}

/// `pidfd_open(pid, 0)`; the fd is close-on-exec.
pub fn pidfd_open(pid: pid_t) -> Result<RawFd, Errno> {
    // SAFETY: pidfd_open takes two integer arguments and returns a new fd or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        Err(Errno::last())
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

/// Waits on a futex word while it still holds `expected`, for at most
/// `timeout_ms` (None: no limit). Returns on a wake, a timeout, a signal or a
/// changed value alike; callers re-check their condition.
pub fn futex_wait(word: &std::sync::atomic::AtomicU32, expected: u32, timeout_ms: Option<u64>) {
    let ts = timeout_ms.map(|ms| libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: word is a valid aligned u32 for the duration of the call; ts_ptr is
    // null or points to a live timespec.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, ts_ptr)
    };
}

/// Wakes every waiter on a futex word.
pub fn futex_wake_all(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: word is a valid aligned u32.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
}

/// Raw `rt_sigprocmask(SIG_SETMASK)` of the full 64-bit kernel mask; unlike
/// glibc's wrapper it can block glibc's internal signals too. Returns the old mask.
pub fn set_raw_sigmask(mask: u64) -> u64 {
    let mut old: u64 = 0;
    // SAFETY: both pointers refer to valid 8-byte kernel sigsets.
    unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &mask as *const u64, &mut old as *mut u64, 8usize)
    };
    old
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets every catchable signal's disposition to SIG_DFL with raw system calls
/// (glibc's wrapper refuses its internal signals).
pub fn reset_all_dispositions() {
    let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: dfl is a valid kernel sigaction; the old action is not requested.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

/// Arms `signal` as this process's parent-death signal, race-free: if the
/// parent (`parent_pid`, recorded before the fork) is already gone, the signal
/// is raised at once.
///
/// Async-signal-safe: prctl, getppid, getpid and kill only. Runs in the child
/// between fork and exec.
pub fn arm_pdeathsig(signal: c_int, parent_pid: pid_t) {
    if signal == 0 {
        return;
    }
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0);
        if libc::getppid() != parent_pid {
            libc::kill(libc::getpid(), signal);
        }
    }
}
