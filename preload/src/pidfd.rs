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
//! Only pidfds of the process's own children are remembered.
//!
//! Pid reuse: a zombie keeps its pid, but a child the shim reaped frees it
//! while its exit is stored, so the kernel may give the pid to another
//! process before the program waits. The stored exit answers for the pid
//! until a newer child of the program's own gets it (see
//! `chld::child_pid_given`), and each record keeps the store's sequence
//! number from which an exit of its pid is the one of the process its pidfd
//! names ([`Record::floor`]); once a wait returned that exit ([`delivered`]),
//! the record answers as for a reaped process.
//!
//! Signal context: [`stored_want`] and [`delivered`] are async-signal-safe
//! (atomics and `fstat`), as the waits that call them are.

use crate::store::{Want, STORE};
use crate::sys::{errno, set_errno};
use crate::{chld, config, log};
use libc::{c_int, c_uint, pid_t};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use zreap::sys::bare;

/// One pidfd the program opened: its fd number, the pid it names, the first
/// store sequence number an exit of its process can have, and the inode
/// behind the fd when it was opened. `version` is odd while the record is
/// rewritten.
struct Record {
    version: AtomicU32,
    fd: AtomicI32,
    pid: AtomicI32,
    /// Exits of `pid` stored with a lower sequence number are of earlier
    /// processes that had the pid; [`DELIVERED`] once a wait returned the
    /// exit of this one.
    floor: AtomicU64,
    dev: AtomicU64,
    ino: AtomicU64,
}

/// [`Record::floor`] of a process whose exit a wait returned.
const DELIVERED: u64 = u64::MAX;

/// How many pidfds the shim remembers; past that, the oldest record is
/// reused. In .bss: untouched pages cost no memory.
const CAPACITY: usize = 256;

static RECORDS: [Record; CAPACITY] = [const {
    Record {
        version: AtomicU32::new(0),
        fd: AtomicI32::new(-1),
        pid: AtomicI32::new(0),
        floor: AtomicU64::new(DELIVERED),
        dev: AtomicU64::new(0),
        ino: AtomicU64::new(0),
    }
}; CAPACITY];

/// The next record to reuse when `fd` has none.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Set once a record was written: waits of a program that never opened a
/// pidfd skip [`delivered`]'s scan.
static USED: AtomicBool = AtomicBool::new(false);

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

/// Rewrites `record` with `write` unless another thread (or an interrupted
/// call in this one) is rewriting it or has since `version`.
fn rewrite(record: &Record, version: u32, write: impl FnOnce(&Record)) -> bool {
    if version % 2 == 1 || record.version.compare_exchange(version, version + 1, SeqCst, SeqCst).is_err() {
        return false;
    }
    write(record);
    record.version.store(version + 2, SeqCst);
    true
}

/// Remembers that `fd`, just opened, names `pid`, whose exit is the first
/// stored from sequence number `floor`. Ordinary context.
fn remember(fd: c_int, pid: pid_t, floor: u64) {
    let Some((dev, ino)) = identity(fd) else { return };
    let record = RECORDS
        .iter()
        .find(|r| r.fd.load(SeqCst) == fd)
        .unwrap_or_else(|| &RECORDS[NEXT.fetch_add(1, SeqCst) % CAPACITY]);
    if !USED.load(SeqCst) {
        USED.store(true, SeqCst);
    }
    // Another thread may rewrite the same record: the one that makes the
    // version odd first writes, the other gives up (its fd stays unknown).
    rewrite(record, record.version.load(SeqCst), |r| {
        r.fd.store(fd, SeqCst);
        r.pid.store(pid, SeqCst);
        r.floor.store(floor, SeqCst);
        r.dev.store(dev, SeqCst);
        r.ino.store(ino, SeqCst);
    });
}

/// The floor of a pidfd the kernel just made for `pid`, `before` being the
/// store's next sequence number read (after [`chld::settle`]) before it was
/// made; None when `pid` is no child of this process (nothing the shim
/// stores is its exit). Ordinary context.
fn floor_for(pid: pid_t, before: u64) -> Option<u64> {
    let now = STORE.next_seq();
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
    match bare::waitid_info(libc::P_PID, pid as libc::id_t, options) {
        // A child not reaped yet: if the shim stores its exit, after `now`.
        Ok(_) => Some(now),
        // No child, or reaped since the pidfd was made: by the shim (its
        // exit is then the newest of the pid stored) or by a wait.
        Err(libc::ECHILD) => {
            chld::settle();
            STORE.newest_seq(pid).filter(|&seq| seq >= before)
        }
        Err(_) => None,
    }
}

/// glibc's clone made child `pid` with CLONE_PIDFD, whose pidfd is `pidfd`.
pub fn pidfd_made(pidfd: c_int, pid: pid_t) {
    if config::active() {
        if let Some(floor) = floor_for(pid, 0) {
            remember(pidfd, pid, floor);
        }
    }
}

/// The pid that `fd` was opened for and its record's floor, if the program
/// opened it with `pidfd_open` (or got a stand-in) and it still names that
/// file. Async-signal-safe.
fn named_by(fd: c_int) -> Option<(pid_t, u64)> {
    let here = identity(fd)?;
    RECORDS.iter().find_map(|r| {
        let version = r.version.load(SeqCst);
        let found = (version % 2 == 0 && r.fd.load(SeqCst) == fd)
            .then(|| (r.pid.load(SeqCst), r.floor.load(SeqCst), (r.dev.load(SeqCst), r.ino.load(SeqCst))));
        found
            .filter(|&(_, _, opened)| opened == here && r.version.load(SeqCst) == version)
            .map(|(pid, floor, _)| (pid, floor))
    })
}

/// What a wait on pidfd `fd` takes from the store, if the shim knows the
/// process it names. Async-signal-safe.
pub fn stored_want(fd: c_int) -> Option<Want> {
    named_by(fd).map(|(pid, floor)| Want::PidSince(pid, floor))
}

/// A wait returned an exit of `pid`: from the store, stored with sequence
/// number `seq`, or from the kernel (None). The pidfds of that process now
/// answer as for a reaped one. Async-signal-safe.
pub fn delivered(pid: pid_t, seq: Option<u64>) {
    if !USED.load(SeqCst) {
        return;
    }
    for r in &RECORDS {
        let version = r.version.load(SeqCst);
        let floor = r.floor.load(SeqCst);
        // A record opened after that exit names a later process.
        if r.pid.load(SeqCst) != pid || floor == DELIVERED || seq.is_some_and(|seq| seq < floor) {
            continue;
        }
        rewrite(r, version, |r| r.floor.store(DELIVERED, SeqCst));
    }
}

/// pidfd_open(2), interposed: the kernel's pidfd, remembered, or a stand-in
/// for a child whose exit the shim stored.
pub fn pidfd_open_impl(pid: pid_t, flags: c_uint) -> c_int {
    let emulated = pid > 0 && flags & !PIDFD_FLAGS == 0 && config::active();
    // The store first: the child's zombie would have kept its pid, so a
    // process that has the pid now is not the child meant (a newer child of
    // the program's own has superseded the exit: see chld::child_pid_given).
    // A child of the program's own that has the pid now, made by a path the
    // stub does not see, is newer than the stored exit.
    if let Some(seq) = emulated.then(|| stored_seq(pid)).flatten() {
        if !chld::supersede_if_newer_child(pid) {
            return stand_in(pid, flags, seq);
        }
    }
    let before = if emulated {
        chld::settle();
        STORE.next_seq()
    } else {
        0
    };
    match bare::pidfd_open(pid, flags) {
        Ok(fd) => {
            if let Some(floor) = emulated.then(|| floor_for(pid, before)).flatten() {
                remember(fd, pid, floor);
            }
            fd
        }
        Err(libc::ESRCH) if emulated => {
            // Reaped by the shim since the look above?
            chld::settle();
            match stored_seq(pid) {
                Some(seq) => stand_in(pid, flags, seq),
                None => {
                    set_errno(libc::ESRCH);
                    -1
                }
            }
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// The sequence number of the stored exit a wait for `pid` would take.
/// Async-signal-safe.
fn stored_seq(pid: pid_t) -> Option<u64> {
    STORE.take_with_seq(Want::Pid(pid), true).map(|(_, seq)| seq)
}

/// A readable fd that stands for the zombie `pid` would have been, whose
/// exit was stored with sequence number `seq`: the read end of a pipe whose
/// write end is closed (readable and hung up, as a reaped process's pidfd),
/// or where a pipe's second fd is over the limit, an eventfd (readable).
fn stand_in(pid: pid_t, flags: c_uint, seq: u64) -> c_int {
    let mut ends = [-1; 2];
    let nonblock = if flags & libc::O_NONBLOCK as c_uint != 0 { libc::O_NONBLOCK } else { 0 };
    let saved = errno();
    // SAFETY: ends has room for the two fds.
    let fd = if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC | nonblock) } == 0 {
        let _ = bare::write(ends[1], &[0]);
        // SAFETY: the write end is this function's; only the read end is handed out.
        unsafe { libc::close(ends[1]) };
        ends[0]
    } else if errno() == libc::EMFILE {
        // SAFETY: plain flags; makes one fd.
        let fd = unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | nonblock) };
        if fd == -1 {
            return -1;
        }
        fd
    } else {
        return -1;
    };
    set_errno(saved);
    remember(fd, pid, seq);
    log::event("opened a stand-in pidfd for", pid, None);
    fd
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
                if let Some(want) = stored_want(pidfd) {
                    if STORE.take(want, true).is_some() {
                        return 0;
                    }
                    // A stand-in whose exit a wait took: as a reaped process's pidfd.
                    set_errno(libc::ESRCH);
                    return -1;
                }
            }
            set_errno(e);
            -1
        }
    }
}

/// Does the store hold an exit of `pid` that a wait for the pid would take
/// (not one of an older process that had the pid), and no child of the
/// program has the pid now (one made by a path the stub does not see)?
/// Async-signal-safe.
fn exit_stored(pid: pid_t) -> bool {
    stored_seq(pid).is_some() && !chld::supersede_if_newer_child(pid)
}

/// kill(2), interposed: a pid whose exit the shim stored (and no newer
/// child of the program has) accepts a signal and returns 0, as the zombie
/// would have: the process that has the pid now, if any, is not the
/// program's child, and without the shim could not have had it.
/// Async-signal-safe.
pub fn kill_impl(pid: pid_t, signal: c_int) -> c_int {
    // The store's emptiness first: config::active() makes a system call.
    let stored = pid > 0 && !STORE.is_empty() && (0..=libc::SIGRTMAX()).contains(&signal);
    if stored && config::active() && exit_stored(pid) {
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
