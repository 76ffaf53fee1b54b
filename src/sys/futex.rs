//! Futex wait and wake on an `AtomicU32`: the sleep and wake-up the library's
//! threads use, callable from a signal handler (wake) and allocation-free.

use std::sync::atomic::AtomicU32;

/// Waits on a futex word while it still holds `expected`, for at most
/// `timeout_ms` (None: no limit). Returns on a wake, a timeout, a signal or a
/// changed value alike; callers re-check their condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ms: Option<u64>) {
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
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: word is a valid aligned u32.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
}
