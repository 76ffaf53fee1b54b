//! Pidfds of children the shim reaped: `pidfd_open`, `waitid(P_PIDFD)` and
//! `pidfd_send_signal` answer as they would for the zombie the child would
//! have been without the shim.
//!
//! Without the shim, an exited child stays a zombie until its parent waits
//! for it: `pidfd_open(pid)` finds it, its pidfd is readable, `waitid(P_PIDFD)`
//! returns its status and a signal sent to it is accepted. Once the shim has
//! reaped it (`ZREAP_REAP=all`, or a child the program's handler left), the
//! kernel answers ESRCH or ECHILD instead, and asyncio's `PidfdChildWatcher`
//! (Python 3.12's default) fails to start a child that exits at once. So:
//!
//! - `pidfd_open` of a pid whose exit is stored returns a stand-in: the read
//!   end of a pipe that holds one byte (readable at once, as a zombie's pidfd
//!   is), close-on-exec, non-blocking with `PIDFD_NONBLOCK`;
//! - `waitid(P_PIDFD)` that the kernel answers with ECHILD (the shim reaped
//!   the process) or EBADF (a stand-in) returns the stored exit of the pid
//!   that fd was opened for, exactly once;
//! - `pidfd_send_signal` to such a process returns 0 while its exit is
//!   stored.
//!
//! The shim knows which pid a pidfd names from the calls that made it
//! ([`RECORDS`]; the stub interposes glibc's `pidfd_open`, `clone` with
//! `CLONE_PIDFD` and, on x86-64, `syscall(SYS_pidfd_open, ...)`), checked
//! against the fd's inode, which tells pipes apart and, from Linux 6.9
//! (pidfs), pidfds too. A pidfd got another way (`dup`, `SCM_RIGHTS`,
//! `pidfd_getfd`, a raw `clone3`) is not known and gets the kernel's answers.
//!
//! Signal context: [`pid_of`] is async-signal-safe (atomics and `fstat`), as
//! the waits that call it are.

use crate::store::{Want, STORE};
use crate::sys::{errno, set_errno};
use crate::{chld, config, log};
use libc::{c_int, c_uint, pid_t};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use zreap::sys::bare;

/// One pidfd the program opened: its fd number, the pid it names, and the
/// inode behind the fd when it was opened. `version` is odd while the record
/// is rewritten.
struct Record {
    version: AtomicU32,
    fd: AtomicI32,
    pid: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
}

/// How many pidfds the shim remembers; past that, the oldest record is
/// reused. In .bss: untouched pages cost no memory.
const CAPACITY: usize = 256;

static RECORDS: [Record; CAPACITY] = [const {
    Record {
        version: AtomicU32::new(0),
        fd: AtomicI32::new(-1),
        pid: AtomicI32::new(0),
        dev: AtomicU64::new(0),
        ino: AtomicU64::new(0),
    }
}; CAPACITY];

/// The next record to reuse when `fd` has none.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `PIDFD_NONBLOCK` and `PIDFD_THREAD` (Linux 6.9): the flags pidfd_open takes.
const PIDFD_FLAGS: c_uint = (libc::O_NONBLOCK | libc::O_EXCL) as c_uint;

/// The device and inode behind `fd`. Async-signal-safe; keeps errno.
fn identity(fd: c_int) -> Option<(u64, u64)> {
    let saved = errno();
    // SAFETY: an all-zero stat is valid; fstat only writes it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid stat to fill.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    set_errno(saved);
    ok.then_some((st.st_dev, st.st_ino))
}

/// Remembers that `fd`, just opened, names `pid`. Ordinary context.
fn remember(fd: c_int, pid: pid_t) {
    let Some((dev, ino)) = identity(fd) else { return };
    let record = RECORDS
        .iter()
        .find(|r| r.fd.load(SeqCst) == fd)
        .unwrap_or_else(|| &RECORDS[NEXT.fetch_add(1, SeqCst) % CAPACITY]);
    // Another thread may rewrite the same record: the one that makes the
    // version odd first writes, the other gives up (its fd stays unknown).
    let version = record.version.load(SeqCst);
    if version % 2 == 1 || record.version.compare_exchange(version, version + 1, SeqCst, SeqCst).is_err() {
        return;
    }
    record.fd.store(fd, SeqCst);
    record.pid.store(pid, SeqCst);
    record.dev.store(dev, SeqCst);
    record.ino.store(ino, SeqCst);
    record.version.store(version + 2, SeqCst);
}

/// glibc's clone made child `pid` with CLONE_PIDFD, whose pidfd is `pidfd`.
pub fn pidfd_made(pidfd: c_int, pid: pid_t) {
    if config::active() {
        remember(pidfd, pid);
    }
}

/// The pid that `fd` was opened for, if the program opened it with
/// `pidfd_open` (or got a stand-in) and it still names that file.
/// Async-signal-safe.
pub fn pid_of(fd: c_int) -> Option<pid_t> {
    let here = identity(fd)?;
    RECORDS.iter().find_map(|r| {
        let version = r.version.load(SeqCst);
        let found = (version % 2 == 0 && r.fd.load(SeqCst) == fd)
            .then(|| (r.pid.load(SeqCst), (r.dev.load(SeqCst), r.ino.load(SeqCst))));
        found.filter(|&(_, opened)| opened == here && r.version.load(SeqCst) == version).map(|(pid, _)| pid)
    })
}

/// Does the store hold an exit of `pid` that no wait has taken yet?
/// Async-signal-safe.
pub fn exit_stored(pid: pid_t) -> bool {
    STORE.take(Want::Pid(pid), true).is_some()
}

/// pidfd_open(2), interposed: a stand-in for a child whose exit the shim
/// stored, else the kernel's pidfd, remembered.
pub fn pidfd_open_impl(pid: pid_t, flags: c_uint) -> c_int {
    let emulated = pid > 0 && flags & !PIDFD_FLAGS == 0 && config::active();
    if emulated && exit_stored(pid) {
        return stand_in(pid, flags);
    }
    match bare::pidfd_open(pid, flags) {
        Ok(fd) => {
            if emulated {
                remember(fd, pid);
            }
            fd
        }
        Err(libc::ESRCH) if emulated => {
            // Reaped by the shim between the look above and the call?
            chld::settle();
            if exit_stored(pid) {
                stand_in(pid, flags)
            } else {
                set_errno(libc::ESRCH);
                -1
            }
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// A readable fd that stands for the zombie `pid` would have been.
fn stand_in(pid: pid_t, flags: c_uint) -> c_int {
    let mut ends = [-1; 2];
    let nonblock = if flags & libc::O_NONBLOCK as c_uint != 0 { libc::O_NONBLOCK } else { 0 };
    // SAFETY: ends has room for the two fds.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC | nonblock) } == -1 {
        return -1;
    }
    let saved = errno();
    let _ = bare::write(ends[1], &[0]);
    // SAFETY: the write end is this function's; only the read end is handed out.
    unsafe { libc::close(ends[1]) };
    set_errno(saved);
    remember(ends[0], pid);
    log::event("opened a stand-in pidfd for", pid, None);
    ends[0]
}

/// pidfd_send_signal(2), interposed: a process whose exit the shim stored
/// accepts a signal (returns 0), as a zombie does.
///
/// # Safety
/// `info` is NULL or points to a valid siginfo.
pub unsafe fn pidfd_send_signal_impl(pidfd: c_int, signal: c_int, info: *mut libc::siginfo_t, flags: c_uint) -> c_int {
    // SAFETY: the caller vouches for info.
    match unsafe { bare::pidfd_send_signal(pidfd, signal, info, flags) } {
        Ok(()) => 0,
        Err(e) => {
            let gone = matches!(e, libc::ESRCH | libc::EBADF) && flags == 0 && (0..=libc::SIGRTMAX()).contains(&signal);
            if gone && config::active() {
                chld::settle();
                if pid_of(pidfd).is_some_and(exit_stored) {
                    return 0;
                }
            }
            set_errno(e);
            -1
        }
    }
}

/// kill(2), interposed: a pid whose exit the shim stored (and no newer
/// child of the program has) accepts a signal and returns 0, as the zombie
/// would have: the process that has the pid now, if any, is not the
/// program's child, and without the shim could not have had it.
/// Async-signal-safe.
pub fn kill_impl(pid: pid_t, signal: c_int) -> c_int {
    if pid > 0 && (0..=libc::SIGRTMAX()).contains(&signal) && config::active() && exit_stored(pid) {
        log::event("kept a signal from the pid of the stored exit of", pid, None);
        return 0;
    }
    match bare::kill(pid, signal) {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}
