//! The pidfile: written atomically by the daemon, locked while it runs, and
//! removed at the daemon's normal exit if it is still its own.
//!
//! Post-fork code: [`write_pidfile`] runs in the daemon before exec or return
//! and is async-signal-safe (stack buffers and system calls only).

use crate::sys;
use libc::{c_int, pid_t};
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering::SeqCst};

/// The pidfile the daemon removes when it exits normally (leaked CString).
static PIDFILE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// The daemon's pid and the pidfile's inode, for the exit-time removal.
static DAEMON_PID: AtomicI32 = AtomicI32::new(0);
static PIDFILE_INO: AtomicU64 = AtomicU64::new(0);

/// Writes our pid to "<path>.<pid>.tmp", locks it, and puts it in place
/// without a moment where `path` is missing, empty or half-written: a rename
/// that refuses to replace when no pidfile exists, `rename` over a stale one whose lock we hold. A
/// pidfile locked by a live daemon: EEXIST. Returns the fd holding the lock.
/// Async-signal-safe: the temporary name is built on the stack.
pub(super) fn write_pidfile(path: &CStr) -> Result<RawFd, c_int> {
    // SAFETY (whole block): system calls on NUL-terminated buffers: the plan's
    // path and the stack buffer `tmp`.
    unsafe {
        let pid = libc::getpid();
        let mut text = [0u8; 12];
        let len = format_decimal(pid as u32, &mut text);
        text[len] = b'\n';

        // "<path>.<pid>.tmp": plan() checked that it fits.
        let mut tmp = [0u8; libc::PATH_MAX as usize];
        let base = path.to_bytes();
        tmp[..base.len()].copy_from_slice(base);
        let mut end = base.len();
        tmp[end] = b'.';
        end += 1;
        end += format_decimal(pid as u32, &mut tmp[end..]);
        tmp[end..end + 4].copy_from_slice(b".tmp");
        let tmp_c: *const libc::c_char = tmp.as_ptr().cast();

        let fresh = libc::open(tmp_c, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
        if fresh == -1 {
            return Err(sys::errno());
        }
        let give_up = |e: c_int| {
            libc::unlink(tmp_c);
            sys::close(fresh);
            Err(e)
        };
        if libc::flock(fresh, libc::LOCK_EX | libc::LOCK_NB) == -1
            || libc::write(fresh, text.as_ptr().cast(), len + 1) != (len + 1) as isize
        {
            return give_up(sys::errno());
        }
        // Another daemon may create or replace the file meanwhile: retry a few times.
        for _ in 0..8 {
            let old = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if old == -1 {
                if sys::errno() != libc::ENOENT {
                    return give_up(sys::errno());
                }
                if rename_noreplace(tmp_c, path.as_ptr()) == 0 {
                    return Ok(published(fresh, pid));
                }
                if sys::errno() != libc::EEXIST {
                    return give_up(sys::errno());
                }
                continue;
            }
            if libc::flock(old, libc::LOCK_EX | libc::LOCK_NB) == -1 {
                let e = sys::errno();
                sys::close(old);
                return give_up(if e == libc::EWOULDBLOCK { libc::EEXIST } else { e });
            }
            // A stale pidfile, now locked by us; replace it if it is still the one at `path`.
            let (mut held, mut named): (libc::stat, libc::stat) = (std::mem::zeroed(), std::mem::zeroed());
            let same = libc::fstat(old, &mut held) == 0
                && libc::stat(path.as_ptr(), &mut named) == 0
                && (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino);
            let replaced = same && libc::rename(tmp_c, path.as_ptr()) == 0;
            let e = sys::errno();
            sys::close(old);
            if replaced {
                return Ok(published(fresh, pid));
            }
            if same {
                return give_up(e);
            }
        }
        give_up(libc::EEXIST)
    }
}

/// Moves `from` to `to` unless `to` exists (EEXIST). The fd opened as `from`
/// then names `to`. Where the filesystem has no RENAME_NOREPLACE, link+unlink
/// gives the same guarantee. Async-signal-safe.
///
/// # Safety
/// Both are NUL-terminated paths.
unsafe fn rename_noreplace(from: *const libc::c_char, to: *const libc::c_char) -> c_int {
    // SAFETY: the caller passes valid paths.
    unsafe {
        let rc = libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, from, libc::AT_FDCWD, to, libc::RENAME_NOREPLACE);
        if rc == 0 || !matches!(sys::errno(), libc::EINVAL | libc::ENOSYS) {
            return rc as c_int;
        }
        if libc::link(from, to) == -1 {
            return -1;
        }
        libc::unlink(from);
        0
    }
}

/// Remembers the published pidfile for the exit-time removal.
fn published(fd: RawFd, pid: pid_t) -> RawFd {
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat fills a valid struct.
    if unsafe { libc::fstat(fd, &mut st) } == 0 {
        PIDFILE_INO.store(st.st_ino, SeqCst);
    }
    DAEMON_PID.store(pid, SeqCst);
    fd
}

/// Room the temporary pidfile name needs beyond the path: ".<pid>.tmp\0".
pub(super) const TMP_SUFFIX_MAX: usize = 1 + 10 + 4 + 1;

/// Writes `n` in decimal into `out`; returns the number of digits.
fn format_decimal(mut n: u32, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = digits[len - 1 - i];
    }
    len
}

/// Registers, once per process, the exit handler that removes the daemon's
/// pidfile. Runs before the fork, where registering may allocate.
pub(super) fn register_pidfile_removal(path: &CStr) {
    let leaked = path.to_owned().into_raw();
    let previous = PIDFILE.swap(leaked, SeqCst);
    if previous.is_null() {
        // SAFETY: remove_pidfile is an extern "C" fn with no arguments.
        unsafe { libc::atexit(remove_pidfile) };
    } else {
        // SAFETY: previous came from CString::into_raw above and is no longer published.
        drop(unsafe { CString::from_raw(previous) });
    }
}

/// At a normal exit of the daemon, removes the pidfile if it is still ours.
extern "C" fn remove_pidfile() {
    let path = PIDFILE.load(SeqCst);
    // SAFETY: getpid cannot fail.
    if path.is_null() || DAEMON_PID.load(SeqCst) != unsafe { libc::getpid() } {
        return;
    }
    // SAFETY: path is a valid C string published by register_pidfile_removal.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(path, &mut st) == 0 && st.st_ino == PIDFILE_INO.load(SeqCst) {
            libc::unlink(path);
        }
    }
}
