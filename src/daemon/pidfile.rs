//! The pidfile: written atomically by the daemon, locked while it runs, and
//! removed at the daemon's normal exit if it is still its own.
//!
//! Post-fork code: [`write_pidfile`] runs in the daemon before exec or return
//! and is async-signal-safe (stack buffers and system calls only).

use crate::sys;
use libc::{c_int, mode_t, pid_t};
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering::SeqCst};

/// The pidfile the daemon removes when it exits normally (leaked CString).
static PIDFILE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// The daemon's pid and the pidfile's inode, for the exit-time removal.
static DAEMON_PID: AtomicI32 = AtomicI32::new(0);
static PIDFILE_INO: AtomicU64 = AtomicU64::new(0);

/// Writes our pid to `<path>.<pid>.tmp`, locks it, and puts it in place
/// without a moment where `path` is missing, empty or half-written: a rename
/// that refuses to replace when no pidfile exists, `rename` over a stale one whose lock we hold. A
/// pidfile locked by a live daemon: EEXIST. Returns the fd holding the lock.
/// Async-signal-safe: the temporary name is built on the stack.
pub(super) fn write_pidfile(path: &CStr) -> Result<RawFd, c_int> {
    let pid = getpid();
    let mut digits = [0u8; 10];
    let decimal = format_decimal(pid as u32, &mut digits);
    let mut text = StackStr::<12>::new();
    text.push(decimal)?;
    text.push(b"\n")?;

    // `<path>.<pid>.tmp`: plan() checked that it fits.
    let mut tmp_name = StackStr::<{ libc::PATH_MAX as usize }>::new();
    tmp_name.push(path.to_bytes())?;
    tmp_name.push(b".")?;
    tmp_name.push(decimal)?;
    tmp_name.push(b".tmp")?;
    let tmp = tmp_name.as_c_str()?;

    // A name left there (by a daemon that had our pid, or planted as a
    // symlink by whoever may write the directory) is removed, never followed:
    // the file is made new, and one put back meanwhile fails the open.
    let _ = unlink(tmp);
    let fresh = create_new(tmp, 0o644)?;
    let give_up = |e: c_int| -> Result<RawFd, c_int> {
        let _ = unlink(tmp);
        sys::close(fresh);
        Err(e)
    };
    if let Err(e) = flock_nb(fresh).and_then(|()| write_once(fresh, text.as_bytes())) {
        return give_up(e);
    }
    // Another daemon may create or replace the file meanwhile: retry a few times.
    for _ in 0..8 {
        let old = match open_read(path) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => match rename_noreplace(tmp, path) {
                Ok(()) => return Ok(published(fresh, pid)),
                Err(libc::EEXIST) => continue,
                Err(e) => return give_up(e),
            },
            Err(e) => return give_up(e),
        };
        if let Err(e) = flock_nb(old) {
            sys::close(old);
            return give_up(if e == libc::EWOULDBLOCK { libc::EEXIST } else { e });
        }
        // A stale pidfile, now locked by us; replace it if it is still the one at `path`.
        let same = sys::bare::file_id(old)
            .is_ok_and(|held| stat(path).is_ok_and(|named| held == (named.st_dev, named.st_ino)));
        if same {
            let replaced = rename(tmp, path);
            sys::close(old);
            return match replaced {
                Ok(()) => Ok(published(fresh, pid)),
                Err(e) => give_up(e),
            };
        }
        sys::close(old);
    }
    give_up(libc::EEXIST)
}

/// Moves `from` to `to` unless `to` exists (EEXIST). The fd opened as `from`
/// then names `to`. Where the filesystem has no RENAME_NOREPLACE, link+unlink
/// gives the same guarantee. Async-signal-safe.
fn rename_noreplace(from: &CStr, to: &CStr) -> Result<(), c_int> {
    match renameat2_noreplace(from, to) {
        Err(libc::EINVAL | libc::ENOSYS) => {}
        done => return done,
    }
    link(from, to)?;
    let _ = unlink(from);
    Ok(())
}

/// Remembers the published pidfile for the exit-time removal.
fn published(fd: RawFd, pid: pid_t) -> RawFd {
    if let Ok((_, ino)) = sys::bare::file_id(fd) {
        PIDFILE_INO.store(ino, SeqCst);
    }
    DAEMON_PID.store(pid, SeqCst);
    fd
}

/// Room the temporary pidfile name needs beyond the path: `.<pid>.tmp\0`.
pub(super) const TMP_SUFFIX_MAX: usize = 1 + 10 + 4 + 1;

/// Writes `n` in decimal at the end of `digits`; returns the digits written.
fn format_decimal(mut n: u32, digits: &mut [u8; 10]) -> &[u8] {
    // u32::MAX has 10 digits: the loop always ends at a break.
    let mut start = 0;
    for (i, slot) in digits.iter_mut().enumerate().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            start = i;
            break;
        }
    }
    digits.get(start..).unwrap_or_default()
}

/// A byte string built on the stack, always followed by a NUL (no allocation).
struct StackStr<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    fn new() -> Self {
        StackStr { bytes: [0; N], len: 0 }
    }

    /// Appends `part`; ENAMETOOLONG if no room would be left for the NUL.
    fn push(&mut self, part: &[u8]) -> Result<(), c_int> {
        let end = self.len.checked_add(part.len()).filter(|&end| end < N).ok_or(libc::ENAMETOOLONG)?;
        let slot = self.bytes.get_mut(self.len..end).ok_or(libc::ENAMETOOLONG)?;
        slot.copy_from_slice(part);
        self.len = end;
        Ok(())
    }

    /// The bytes pushed so far, without the NUL.
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// The bytes pushed so far as a C string; EINVAL if they contain a NUL.
    fn as_c_str(&self) -> Result<&CStr, c_int> {
        let with_nul = self.bytes.get(..=self.len).ok_or(libc::EINVAL)?;
        CStr::from_bytes_with_nul(with_nul).map_err(|_| libc::EINVAL)
    }
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
    if path.is_null() || DAEMON_PID.load(SeqCst) != getpid() {
        return;
    }
    // SAFETY: path came from CString::into_raw in register_pidfile_removal: a
    // NUL-terminated string, freed only after a later registration has swapped
    // it out of PIDFILE (in the caller's process, before a fork).
    let path = unsafe { CStr::from_ptr(path) };
    if stat(path).is_ok_and(|st| st.st_ino == PIDFILE_INO.load(SeqCst)) {
        let _ = unlink(path);
    }
}

/// Ok for a return value other than -1, else errno. Async-signal-safe.
fn check(rc: c_int) -> Result<c_int, c_int> {
    if rc == -1 {
        Err(sys::errno())
    } else {
        Ok(rc)
    }
}

/// `getpid()`. Async-signal-safe.
fn getpid() -> pid_t {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// `open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)`: a
/// new fd on a new file; EEXIST if `path` exists, a symlink too.
/// Async-signal-safe.
fn create_new(path: &CStr, mode: mode_t) -> Result<RawFd, c_int> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: path is a valid NUL-terminated string for the whole call; with
    // O_CREAT, open reads the mode argument, which is passed.
    check(unsafe { libc::open(path.as_ptr(), flags, mode) })
}

/// `open(path, O_RDONLY | O_CLOEXEC)`: a new fd. Async-signal-safe.
fn open_read(path: &CStr) -> Result<RawFd, c_int> {
    // SAFETY: path is a valid NUL-terminated string for the whole call; no
    // O_CREAT, so no mode argument is read.
    check(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
}

/// `flock(fd, LOCK_EX | LOCK_NB)`. Async-signal-safe.
fn flock_nb(fd: RawFd) -> Result<(), c_int> {
    // SAFETY: integer arguments; only the lock on fd's open file changes.
    check(unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }).map(drop)
}

/// One `write(fd, bytes)`; a short write fails with the current errno.
/// Async-signal-safe.
fn write_once(fd: RawFd, bytes: &[u8]) -> Result<(), c_int> {
    // SAFETY: the kernel reads at most bytes.len() bytes from a valid slice.
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if written == bytes.len() as isize {
        Ok(())
    } else {
        Err(sys::errno())
    }
}

/// `unlink(path)`. Async-signal-safe.
fn unlink(path: &CStr) -> Result<(), c_int> {
    // SAFETY: path is a valid NUL-terminated string for the whole call.
    check(unsafe { libc::unlink(path.as_ptr()) }).map(drop)
}

/// `link(from, to)`. Async-signal-safe.
fn link(from: &CStr, to: &CStr) -> Result<(), c_int> {
    // SAFETY: both are valid NUL-terminated strings for the whole call.
    check(unsafe { libc::link(from.as_ptr(), to.as_ptr()) }).map(drop)
}

/// `rename(from, to)`. Async-signal-safe.
fn rename(from: &CStr, to: &CStr) -> Result<(), c_int> {
    // SAFETY: both are valid NUL-terminated strings for the whole call.
    check(unsafe { libc::rename(from.as_ptr(), to.as_ptr()) }).map(drop)
}

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`.
/// Async-signal-safe.
fn renameat2_noreplace(from: &CStr, to: &CStr) -> Result<(), c_int> {
    // SAFETY: both paths are valid NUL-terminated strings for the whole call;
    // the other arguments are integers of the types renameat2 expects.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == -1 {
        Err(sys::errno())
    } else {
        Ok(())
    }
}

/// `stat(path)`. Async-signal-safe.
fn stat(path: &CStr) -> Result<libc::stat, c_int> {
    // SAFETY: libc::stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is a valid NUL-terminated string; st is a valid struct for
    // the kernel to fill.
    check(unsafe { libc::stat(path.as_ptr(), &mut st) }).map(|_| st)
}
