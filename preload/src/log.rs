//! ZREAP_LOG: one line per event the shim acted on, written with write(2)
//! from a stack buffer, so it is async-signal-safe.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

/// The log fd; -1: no log.
static LOG_FD: AtomicI32 = AtomicI32::new(-1);
/// The device and inode of the log's file, to tell it from a file of the
/// program's that got the same fd number after the program closed the log's.
static LOG_DEV: AtomicU64 = AtomicU64::new(0);
static LOG_INO: AtomicU64 = AtomicU64::new(0);

/// Logs to `fd` from now on (at start-up, before any event).
pub fn start(fd: libc::c_int) {
    let Ok((dev, ino)) = zreap::sys::bare::file_id(fd) else { return };
    LOG_DEV.store(dev, SeqCst);
    LOG_INO.store(ino, SeqCst);
    LOG_FD.store(fd, SeqCst);
}

/// The log fd, unless the program closed it (the log then stops, rather
/// than write into a file of the program's). Async-signal-safe.
fn log_fd() -> Option<libc::c_int> {
    let fd = LOG_FD.load(Relaxed);
    if fd < 0 {
        return None;
    }
    if zreap::sys::bare::file_id(fd) != Ok((LOG_DEV.load(Relaxed), LOG_INO.load(Relaxed))) {
        LOG_FD.store(-1, Relaxed);
        return None;
    }
    Some(fd)
}

/// Appends decimal `n` to `buf` at `len`; returns the new length.
fn push_decimal(buf: &mut [u8], mut len: usize, n: i64) -> usize {
    if n < 0 {
        len = push(buf, len, b"-");
    }
    let mut digits = [0u8; 20];
    let mut count = 0;
    let mut v = n.unsigned_abs();
    loop {
        digits[count] = b'0' + (v % 10) as u8;
        count += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while count > 0 && len < buf.len() {
        count -= 1;
        buf[len] = digits[count];
        len += 1;
    }
    len
}

fn push(buf: &mut [u8], len: usize, bytes: &[u8]) -> usize {
    let n = bytes.len().min(buf.len() - len);
    buf[len..len + n].copy_from_slice(&bytes[..n]);
    len + n
}

/// Logs "zreap_preload[PID]: WHAT CHILD (STATUS)". Async-signal-safe.
pub fn event(what: &str, child: libc::pid_t, wstatus: Option<libc::c_int>) {
    let Some(fd) = log_fd() else { return };
    let mut buf = [0u8; 160];
    let mut len = push(&mut buf, 0, b"zreap_preload[");
    len = push_decimal(&mut buf, len, i64::from(zreap::sys::bare::getpid()));
    len = push(&mut buf, len, b"]: ");
    len = push(&mut buf, len, what.as_bytes());
    len = push(&mut buf, len, b" ");
    len = push_decimal(&mut buf, len, i64::from(child));
    if let Some(status) = wstatus {
        if libc::WIFEXITED(status) {
            len = push(&mut buf, len, b" (exit ");
            len = push_decimal(&mut buf, len, i64::from(libc::WEXITSTATUS(status)));
        } else {
            len = push(&mut buf, len, b" (signal ");
            len = push_decimal(&mut buf, len, i64::from(libc::WTERMSIG(status)));
        }
        len = push(&mut buf, len, b")");
    }
    len = push(&mut buf, len, b"\n");
    let _ = zreap::sys::bare::write(fd, &buf[..len]);
}
