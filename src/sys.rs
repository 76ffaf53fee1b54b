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

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`: a close-on-exec copy of `fd`.
pub fn dup_cloexec(fd: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC only adds an fd to the table.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        Err(Errno::last())
    } else {
        Ok(copy)
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

/// The pid of a child that has exited and is waiting to be reaped, without
/// reaping it (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`). None when no
/// child has exited, and also when the first child the kernel reports is a
/// ptrace stop rather than an exit (a tracer's stops are never taken for exits).
pub fn peek_exited_child() -> Option<pid_t> {
    let info = waitid_info(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT).ok()??;
    // SAFETY: a siginfo filled by a successful waitid.
    matches!(info.si_code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED).then(|| unsafe { info.si_pid() })
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, in clock
/// ticks since boot), which tells apart two processes that had the same pid
/// more than a tick apart. Works on zombies. None when the process is gone or
/// the file cannot be opened (`EMFILE` included).
///
/// Async-signal-safe: open, read and close into stack buffers; no allocation.
pub fn proc_start_time(pid: pid_t) -> Option<u64> {
    let mut path = [0u8; 32];
    let prefix = b"/proc/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut len = prefix.len() + write_decimal(&mut path[prefix.len()..], u64::try_from(pid).ok()?);
    path[len..len + 5].copy_from_slice(b"/stat");
    len += 5;
    path[len] = 0;
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 2048];
    // SAFETY: reads at most buf.len() bytes into buf.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    close(fd);
    let text = buf.get(..usize::try_from(n).ok()?)?;
    start_time_from_stat(text)
}

/// Field 22 (starttime) of a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after the last ')'.
pub fn start_time_from_stat(stat: &[u8]) -> Option<u64> {
    let close_paren = stat.iter().rposition(|&b| b == b')')?;
    let field = stat[close_paren + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty()).nth(19)?;
    field.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))).flatten()
    })
}

/// Writes `n` in decimal at the start of `out`; returns the length.
/// Async-signal-safe. `out` must hold 20 bytes.
fn write_decimal(out: &mut [u8], mut n: u64) -> usize {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out[..len].copy_from_slice(&digits[i..]);
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_after_the_last_paren() {
        let line = b"42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10\n";
        assert_eq!(start_time_from_stat(line), Some(987654));
        assert_eq!(start_time_from_stat(b"42 (x) S 1 2"), None);
        assert_eq!(start_time_from_stat(b"no paren"), None);
    }

    #[test]
    fn start_time_of_this_process_is_stable_and_of_a_gone_pid_none() {
        let me = proc_start_time(std::process::id() as pid_t).unwrap();
        assert_eq!(proc_start_time(std::process::id() as pid_t), Some(me));
        assert_eq!(proc_start_time(i32::MAX), None);
    }
}
