//! System calls made with the `syscall` instruction itself, and threads made
//! with `clone` alone: code that neither glibc nor errno sees.
//!
//! A thread made by `pthread_create` makes glibc treat the process as
//! multi-threaded for the rest of its life. Every later `fork` then takes
//! malloc's and stdio's locks and releases them in parent and child, writing
//! pages the two share: about 16 more page faults per fork+exit+wait, +15-25 %
//! on a VM. And `pthread_exit` in `main` no longer ends the process, which
//! lives on with the library's thread alone. A bare thread has neither effect.
//!
//! The price is that a bare thread has no TLS of its own: it shares the
//! creating thread's. Code that runs on it makes system calls only through
//! this module (never errno, never a libc function, never the dynamic
//! linker's lazy resolver), allocates nothing, takes no lock and never
//! panics, with every signal blocked. And glibc's `setuid` and friends change
//! the credentials of the threads glibc knows, so a bare thread is made only
//! in a process that cannot change its credentials at all
//! ([`credentials_are_fixed`]); elsewhere the caller makes a pthread.
//!
//! Signal context: every function here but [`spawn`] and
//! [`credentials_are_fixed`] is async-signal-safe and writes no errno.
//!
//! ```
//! // The raw call and libc's agree, and errno is left alone.
//! zreap::sys::set_errno(7);
//! assert_eq!(zreap::sys::bare::getpid(), std::process::id() as libc::pid_t);
//! assert_eq!(zreap::sys::errno(), 7);
//! ```

use libc::{c_int, c_long, c_void};
use std::sync::atomic::AtomicU32;

/// A system call's result: its return value, or the errno it failed with.
/// Async-signal-safe; writes no errno.
///
/// # Safety
/// The arguments are valid for system call `number`.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) unsafe fn syscall6(number: c_long, args: [usize; 6]) -> Result<usize, c_int> {
    let ret: isize;
    // SAFETY: the kernel's x86_64 system call convention; it clobbers rcx and
    // r11 and touches no user stack. The caller vouches for the arguments.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => ret,
            in("rdi") args[0], in("rsi") args[1], in("rdx") args[2],
            in("r10") args[3], in("r8") args[4], in("r9") args[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    decode(ret)
}

/// As on x86_64.
///
/// # Safety
/// The arguments are valid for system call `number`.
#[cfg(target_arch = "aarch64")]
#[inline]
pub(crate) unsafe fn syscall6(number: c_long, args: [usize; 6]) -> Result<usize, c_int> {
    let ret: isize;
    // SAFETY: the kernel's aarch64 system call convention. The caller vouches
    // for the arguments.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") number,
            inlateout("x0") args[0] as isize => ret,
            in("x1") args[1], in("x2") args[2], in("x3") args[3], in("x4") args[4], in("x5") args[5],
            options(nostack),
        );
    }
    decode(ret)
}

/// Elsewhere through libc, which sets errno (restored here): no bare threads
/// there.
///
/// # Safety
/// The arguments are valid for system call `number`.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn syscall6(number: c_long, args: [usize; 6]) -> Result<usize, c_int> {
    let _errno = super::ErrnoGuard::new();
    // SAFETY: the caller vouches for the arguments.
    let ret = unsafe { libc::syscall(number, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if ret == -1 {
        Err(super::errno())
    } else {
        Ok(ret as usize)
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline]
fn decode(ret: isize) -> Result<usize, c_int> {
    if (-4095..0).contains(&ret) {
        Err(-ret as c_int)
    } else {
        Ok(ret as usize)
    }
}

/// Can this platform run a bare thread (raw system calls above)?
const BARE_THREADS: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// `waitid(idtype, id, options)`, retried on EINTR: the child's siginfo, or
/// None when nothing changed state (WNOHANG); Err(errno) on failure.
/// Async-signal-safe.
pub fn waitid_info(idtype: libc::idtype_t, id: libc::id_t, options: c_int) -> Result<Option<libc::siginfo_t>, c_int> {
    waitid_into(idtype, id, options, std::ptr::null_mut())
}

/// [`waitid_info`], with the child's resource usage beside its siginfo: what
/// `wait4` reports (the child's own and that of the descendants it waited
/// for), also with WNOWAIT. Async-signal-safe.
pub fn waitid_usage(
    idtype: libc::idtype_t,
    id: libc::id_t,
    options: c_int,
) -> Result<Option<(libc::siginfo_t, libc::rusage)>, c_int> {
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    Ok(waitid_into(idtype, id, options, &mut usage)?.map(|info| (info, usage)))
}

/// The raw waitid, whose fifth argument is the child's rusage (NULL: none).
fn waitid_into(
    idtype: libc::idtype_t,
    id: libc::id_t,
    options: c_int,
    usage: *mut libc::rusage,
) -> Result<Option<libc::siginfo_t>, c_int> {
    loop {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let args = [
            idtype as usize,
            id as usize,
            &mut info as *mut libc::siginfo_t as usize,
            options as usize,
            usage as usize,
            0,
        ];
        // SAFETY: info is a valid, writable siginfo_t; usage is NULL or a
        // writable rusage.
        match unsafe { syscall6(libc::SYS_waitid, args) } {
            Err(libc::EINTR) => continue,
            Err(errno) => return Err(errno),
            // SAFETY: waitid succeeded, so si_pid is valid (0 when nothing changed).
            Ok(_) => return Ok((unsafe { info.si_pid() } != 0).then_some(info)),
        }
    }
}

/// Waits on a futex word while it still holds `expected`, for at most
/// `timeout_ms` (None: no limit). Returns on a wake, a timeout, a signal or a
/// changed value alike; callers re-check their condition. Async-signal-safe.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ms: Option<u64>) {
    let timeout = timeout_ms.map(|ms| libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    });
    let timeout_ptr = timeout.as_ref().map_or(0, |t| t as *const libc::timespec as usize);
    let op = (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as usize;
    // SAFETY: word is a valid aligned u32 for the call; timeout_ptr is 0 or a live timespec.
    let _ = unsafe { syscall6(libc::SYS_futex, [word.as_ptr() as usize, op, expected as usize, timeout_ptr, 0, 0]) };
}

/// How [`futex_wait_restartable_for`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slept {
    /// A wake, a changed value or the end of the time given.
    Done,
    /// A signal handler without `SA_RESTART` ran (EINTR).
    Interrupted,
    /// The kernel has no `futex_waitv` (before Linux 5.16), or a seccomp
    /// filter refuses it.
    Unsupported,
}

/// Waits on a futex word while it still holds `expected`, for at most
/// `timeout_ms`, and restarts as a blocking system call does: `futex_waitv`
/// takes an absolute deadline, so the kernel restarts it (-ERESTARTSYS) after
/// a handler installed with `SA_RESTART` and ends it with EINTR after one
/// without, where `futex` with a timeout ends with EINTR after any handler.
/// Async-signal-safe.
pub fn futex_wait_restartable_for(word: &AtomicU32, expected: u32, timeout_ms: u64) -> Slept {
    /// struct futex_waitv (linux/futex.h).
    #[repr(C)]
    struct Waiter {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }
    const FUTEX2_SIZE_U32: u32 = 0x02;
    const FUTEX2_PRIVATE: u32 = 128;
    // SAFETY: timespec is plain data; all-zero is valid.
    let mut deadline: libc::timespec = unsafe { std::mem::zeroed() };
    let clock = libc::CLOCK_MONOTONIC as usize;
    // SAFETY: clock_gettime writes one timespec.
    if unsafe { syscall6(libc::SYS_clock_gettime, [clock, &mut deadline as *mut libc::timespec as usize, 0, 0, 0, 0]) }
        .is_err()
    {
        return Slept::Unsupported;
    }
    let nanos = deadline.tv_nsec as u64 + (timeout_ms % 1000) * 1_000_000;
    deadline.tv_sec += (timeout_ms / 1000 + nanos / 1_000_000_000) as libc::time_t;
    deadline.tv_nsec = (nanos % 1_000_000_000) as libc::c_long;
    let waiter = Waiter {
        val: u64::from(expected),
        uaddr: word.as_ptr() as usize as u64,
        flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
        reserved: 0,
    };
    let args = [&waiter as *const Waiter as usize, 1, 0, &deadline as *const libc::timespec as usize, clock, 0];
    // SAFETY: one valid waiter on a live aligned u32, a live deadline.
    match unsafe { syscall6(libc::SYS_futex_waitv, args) } {
        Ok(_) | Err(libc::EAGAIN | libc::ETIMEDOUT) => Slept::Done,
        Err(libc::EINTR) => Slept::Interrupted,
        // ENOSYS before Linux 5.16; EPERM from a seccomp filter that does
        // not know the call.
        Err(_) => Slept::Unsupported,
    }
}

/// Wakes every waiter on a futex word. Async-signal-safe.
pub fn futex_wake_all(word: &AtomicU32) {
    let op = (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as usize;
    // SAFETY: word is a valid aligned u32.
    let _ = unsafe { syscall6(libc::SYS_futex, [word.as_ptr() as usize, op, i32::MAX as usize, 0, 0, 0]) };
}

/// getpid(2). Async-signal-safe.
pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { syscall6(libc::SYS_getpid, [0; 6]) }.map_or(0, |pid| pid as libc::pid_t)
}

/// The thread-id address the kernel holds for the calling thread
/// (`PR_GET_TID_ADDRESS`): glibc's `fork()`, `_Fork()`, `pthread_create` and
/// start-up set one (`CLONE_CHILD_CLEARTID`); a process or thread made by a
/// raw `clone()` has none (0). `None` where the kernel cannot say (it answers
/// only with `CONFIG_CHECKPOINT_RESTORE`). Async-signal-safe.
pub fn tid_address() -> Option<usize> {
    let mut address: usize = 0;
    let args = [libc::PR_GET_TID_ADDRESS as usize, &mut address as *mut usize as usize, 0, 0, 0, 0];
    // SAFETY: PR_GET_TID_ADDRESS writes one pointer to `address`.
    unsafe { syscall6(libc::SYS_prctl, args) }.ok().map(|_| address)
}

/// getpgid(2); -1 on failure. Async-signal-safe.
pub fn getpgid(pid: libc::pid_t) -> libc::pid_t {
    // SAFETY: getpgid takes a pid.
    unsafe { syscall6(libc::SYS_getpgid, [pid as usize, 0, 0, 0, 0, 0]) }.map_or(-1, |pgid| pgid as libc::pid_t)
}

/// pidfd_open(2): a pidfd (close-on-exec) for `pid`, or the errno.
/// Async-signal-safe.
pub fn pidfd_open(pid: libc::pid_t, flags: libc::c_uint) -> Result<c_int, c_int> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    unsafe { syscall6(libc::SYS_pidfd_open, [pid as usize, flags as usize, 0, 0, 0, 0]) }.map(|fd| fd as c_int)
}

/// pidfd_send_signal(2). Async-signal-safe.
///
/// # Safety
/// `info` is NULL or points to a valid siginfo.
pub unsafe fn pidfd_send_signal(
    pidfd: c_int,
    signal: c_int,
    info: *mut libc::siginfo_t,
    flags: libc::c_uint,
) -> Result<(), c_int> {
    let args = [pidfd as usize, signal as usize, info as usize, flags as usize, 0, 0];
    // SAFETY: the caller vouches for info; the rest are integers.
    unsafe { syscall6(libc::SYS_pidfd_send_signal, args) }.map(|_| ())
}

/// kill(2). Async-signal-safe.
pub fn kill(pid: libc::pid_t, signal: c_int) -> Result<(), c_int> {
    // SAFETY: kill takes a pid and a signal number.
    unsafe { syscall6(libc::SYS_kill, [pid as usize, signal as usize, 0, 0, 0, 0]) }.map(|_| ())
}

/// Sends `signal` to this process (kill(getpid(), signal)). Async-signal-safe.
pub fn signal_this_process(signal: c_int) {
    let _ = kill(getpid(), signal);
}

/// sched_yield(2). Async-signal-safe.
pub fn sched_yield() {
    // SAFETY: sched_yield takes no arguments.
    let _ = unsafe { syscall6(libc::SYS_sched_yield, [0; 6]) };
}

/// One write(2) of `bytes` to `fd` (a short write is left short): the
/// count written or the errno. Async-signal-safe.
pub fn write(fd: c_int, bytes: &[u8]) -> Result<usize, c_int> {
    // SAFETY: writes from a valid buffer of that length.
    unsafe { syscall6(libc::SYS_write, [fd as usize, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0]) }
}

/// fstat(2) of `fd`: its device and inode, or the errno. Async-signal-safe.
pub fn file_id(fd: c_int) -> Result<(u64, u64), c_int> {
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one struct stat into `st`.
    unsafe { syscall6(libc::SYS_fstat, [fd as usize, &mut st as *mut libc::stat as usize, 0, 0, 0, 0]) }?;
    Ok((st.st_dev, st.st_ino))
}

/// One read(2) into `buf`: the count read or the errno. Async-signal-safe.
pub fn read(fd: c_int, buf: &mut [u8]) -> Result<usize, c_int> {
    // SAFETY: reads into a valid buffer of that length.
    unsafe { syscall6(libc::SYS_read, [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0]) }
}

/// Can this process never change its credentials? True when its user and
/// group ids are each one non-root id and it holds no capability: `setuid`,
/// `setgid` and `setgroups` then all fail, in every thread, so a thread glibc
/// does not know about can never be left with credentials the rest of the
/// process has given up. Ordinary context.
pub fn credentials_are_fixed() -> bool {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: each call writes three ids to valid places.
    let ids_read = unsafe {
        libc::getresuid(&mut ruid, &mut euid, &mut suid) == 0 && libc::getresgid(&mut rgid, &mut egid, &mut sgid) == 0
    };
    if !ids_read || ruid == 0 || ruid != euid || ruid != suid || rgid != egid || rgid != sgid {
        return false;
    }
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
    let args = [&header as *const CapHeader as usize, data.as_mut_ptr() as usize, 0, 0, 0, 0];
    // SAFETY: a version-3 header and room for its two data words.
    let read = unsafe { syscall6(libc::SYS_capget, args) }.is_ok();
    // Ambient capabilities are a subset of the permitted ones.
    read && data.iter().all(|d| d.effective == 0 && d.permitted == 0)
}

/// A bare thread's stack (its lowest page is a guard).
const STACK_SIZE: usize = 256 * 1024;

/// Starts `entry` on a bare thread with every signal blocked; false if
/// this platform or process cannot have one (the caller then makes a
/// pthread). The thread lives until the process ends or execs, or until
/// `entry` returns (its stack then stays mapped). `entry` must follow this
/// module's rules. Ordinary context; keeps errno.
pub fn spawn(entry: extern "C" fn(*mut c_void) -> c_int) -> bool {
    let _errno = super::ErrnoGuard::new();
    if !BARE_THREADS || !credentials_are_fixed() {
        return false;
    }
    let flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM;
    // SAFETY: a fresh private anonymous mapping; its first page becomes the guard.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: the mapping's first page.
    unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) };
    // A fork's child has no such thread: left out of forks, the stack is not
    // write-protected by each fork, so the thread's next write after one is
    // not a copy-on-write fault (with a TLB flush on every CPU of the process).
    // SAFETY: advice on the mapping made above.
    unsafe { libc::madvise(stack, STACK_SIZE, libc::MADV_DONTFORK) };
    // All 64 signals, glibc's own two included (pthread_sigmask keeps those
    // open): the thread inherits this mask, and a signal delivered to it would
    // run a handler on TLS that is not its own.
    let all: u64 = !0;
    let mut saved: u64 = 0;
    let mask_args = |set: *const u64, old: *mut u64| [libc::SIG_SETMASK as usize, set as usize, old as usize, 8, 0, 0];
    // SAFETY: 8-byte kernel signal sets, valid for the call.
    let blocked = unsafe { syscall6(libc::SYS_rt_sigprocmask, mask_args(&all, &mut saved)) }.is_ok();
    // SAFETY: the stack is the thread's for good (never unmapped); entry runs
    // on it with the blocked mask and calls nothing of glibc's.
    let tid = blocked
        .then(|| unsafe { libc::clone(entry, stack.cast::<u8>().add(STACK_SIZE).cast(), flags, std::ptr::null_mut()) });
    if blocked {
        // SAFETY: restores this thread's mask.
        let _ = unsafe { syscall6(libc::SYS_rt_sigprocmask, mask_args(&saved, std::ptr::null_mut())) };
    }
    if tid.is_some_and(|tid| tid > 0) {
        return true;
    }
    // SAFETY: the mapping made above, which no thread uses.
    unsafe { libc::munmap(stack, STACK_SIZE) };
    false
}
