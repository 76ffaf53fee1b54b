//! The reap fd: an epoll set holding an eventfd (readable while exits wait
//! for delivery) and the pidfds of the tracked children the passes reap:
//! those in the shared fd table, and the keeper's "remote" ones (see
//! [`watch_remote`]).
//!
//! Signal context: `signal`, `sync_eventfd`, `unwatch` and `renew_in_child`
//! are async-signal-safe (raw system calls and atomics only).

use super::State;
use crate::sys;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::SeqCst};

/// The epoll data of the eventfd; a shared pidfd's is its slot index, a
/// remote one's [`REMOTE`] with the slot's generation and index.
pub(super) const EVENTFD_TAG: u64 = u64::MAX;
/// Marks the epoll data of a remote pidfd.
pub(super) const REMOTE: u64 = 1 << 63;

/// This module's words on the reaper's page of hot words ([`super::Hot`]).
pub(super) struct Words {
    signaled: AtomicBool,
    pollers: AtomicU32,
    announced: AtomicI32,
}

impl Words {
    pub(super) const fn new() -> Words {
        Words { signaled: AtomicBool::new(false), pollers: AtomicU32::new(0), announced: AtomicI32::new(0) }
    }
}

/// The eventfd may hold a count: it was written since it was last drained.
/// Spares the read when nothing was written.
static SIGNALED: &AtomicBool = &super::HOT.events.signaled;

/// Blocking waits for any child asleep in `poll` on the epoll set. While one
/// is, the eventfd is also readable when no child in scope is left, so that
/// it returns `ECHILD` when another thread took the last exit.
static POLLERS: &AtomicU32 = &super::HOT.events.pollers;

/// A blocking wait for any child is about to poll the epoll set. Gate held,
/// so that a thread that takes the last exit after the gate is let go sees
/// the poller ([`sync_eventfd`]).
pub(super) fn add_poller() {
    POLLERS.fetch_add(1, SeqCst);
}

/// Whether a blocking wait for any child polls the epoll set.
/// Async-signal-safe.
pub(super) fn has_pollers() -> bool {
    POLLERS.load(SeqCst) > 0
}

/// Undoes [`add_poller`] once the poll returned.
pub(super) fn remove_poller() {
    POLLERS.fetch_sub(1, SeqCst);
}

/// In a forked child: the pollers were the parent's threads, the announced
/// child the parent's. Async-signal-safe; writes only when there is
/// something to forget.
pub(super) fn forget_in_child() {
    if POLLERS.load(SeqCst) != 0 {
        POLLERS.store(0, SeqCst);
    }
    if ANNOUNCED.load(SeqCst) != 0 {
        ANNOUNCED.store(0, SeqCst);
    }
}

/// An exited child the watcher made the eventfd readable for and that may
/// still be unreaped (0: none). Until it is reaped, [`sync_eventfd`] keeps
/// the eventfd readable: a call that took other exits must not drain it.
static ANNOUNCED: &AtomicI32 = &super::HOT.events.announced;

/// The watcher found child `pid` exited and unreaped: makes the eventfd
/// readable until that child is reaped. Gate held.
pub(super) fn announce(efd: RawFd, pid: libc::pid_t) {
    ANNOUNCED.store(pid, SeqCst);
    signal(efd);
}

/// The watcher saw the announced child reaped.
pub(super) fn announced_reaped() {
    ANNOUNCED.store(0, SeqCst);
}

/// Whether the announced child still waits to be reaped. Async-signal-safe
/// (one `waitid` by pid). Should its pid name a newer exited child by now,
/// that one waits too.
fn announced_waits() -> bool {
    let pid = ANNOUNCED.load(SeqCst);
    pid > 0 && sys::exited_unreaped(pid)
}

/// Makes the eventfd readable. Async-signal-safe.
pub(super) fn signal(efd: RawFd) {
    SIGNALED.store(true, SeqCst);
    sys::eventfd_signal(efd);
}

/// The epoll data of remote child `idx` of `generation`.
pub(super) fn remote_data(idx: u32, generation: u32) -> u64 {
    REMOTE | u64::from(generation & 0x7fff_ffff) << 32 | u64::from(idx)
}

/// Whether epoll data from [`remote_data`] names slot `idx` of `generation`.
pub(super) fn is_remote_data(data: u64, idx: u32, generation: u32) -> bool {
    data == remote_data(idx, generation)
}

/// Makes the eventfd and the epoll set; the epoll fd is what `reap_fd` hands out.
pub(super) fn new_event_fds() -> io::Result<(RawFd, RawFd)> {
    // SAFETY: plain fd-creating system calls.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        let e = io::Error::last_os_error();
        sys::close(efd);
        return Err(e);
    }
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: EVENTFD_TAG };
    // SAFETY: both fds were just created; event is valid. O_NONBLOCK on an
    // epoll fd only affects reads, which callers never need; it is set so the
    // fd is what the contract promises.
    let ok = unsafe {
        libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, efd, &mut event) == 0
            && libc::fcntl(epfd, libc::F_SETFL, libc::O_NONBLOCK) == 0
    };
    if !ok {
        let e = io::Error::last_os_error();
        sys::close(efd);
        sys::close(epfd);
        return Err(e);
    }
    Ok((epfd, efd))
}

/// Watches a tracked child's pidfd under its slot index. On failure the
/// pidfd is closed and false returned.
pub(super) fn watch(st: &State, pidfd: RawFd, idx: u32) -> bool {
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: u64::from(idx) };
    // SAFETY: epfd and pidfd are valid fds owned by the library; event is valid.
    let ok = unsafe { libc::epoll_ctl(st.epfd, libc::EPOLL_CTL_ADD, pidfd, &mut event) } == 0;
    if !ok {
        sys::close(pidfd);
    }
    ok
}

/// Registers a tracked child's pidfd, about to go to the keeper, in the epoll
/// set, one-shot: the registration stays while the keeper holds the pidfd
/// (epoll watches the open file, not the fd), so the reap fd turns readable
/// when the child exits with no thread in between, and a pass reaps the
/// child by pid. False when it could not be registered.
pub(super) fn watch_remote(st: &State, pidfd: RawFd, idx: u32, generation: u32) -> bool {
    let events = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
    let mut event = libc::epoll_event { events, u64: remote_data(idx, generation) };
    // SAFETY: epfd and pidfd are valid fds owned by the library; event is valid.
    unsafe { libc::epoll_ctl(st.epfd, libc::EPOLL_CTL_ADD, pidfd, &mut event) == 0 }
}

/// Undoes [`watch_remote`] while the pidfd is still in the shared table.
pub(super) fn unwatch_remote(st: &State, pidfd: RawFd) {
    sys::epoll_del(st.epfd, pidfd);
}

/// Stops watching a pidfd and closes it (-1: nothing). Async-signal-safe.
pub(super) fn unwatch(st: &State, pidfd: RawFd) {
    if pidfd >= 0 {
        sys::epoll_del(st.epfd, pidfd);
        sys::close(pidfd);
    }
}

/// Makes the eventfd readable exactly when undelivered exits exist (records,
/// or the child the watcher announced, still unreaped), or when no child in
/// scope is left while a wait for any child polls (only while the reap fd is
/// in use). Async-signal-safe.
pub(super) fn sync_eventfd(st: &State) {
    if !st.fd_wanted {
        return;
    }
    if st.table.has_records() || announced_waits() || (has_pollers() && !st.children_left()) {
        signal(st.efd);
    } else if SIGNALED.swap(false, SeqCst) {
        sys::eventfd_drain(st.efd);
    }
}

/// In a forked child: closes the parent's eventfd, epoll set and spare fd,
/// for the child to make its own when it needs them. Async-signal-safe.
pub(super) fn close_in_child(st: &mut State) {
    for fd in [&mut st.efd, &mut st.epfd, &mut st.spare_fd] {
        sys::close(*fd);
        *fd = -1;
    }
}

/// In a forked child: fresh fds under the same numbers, so `zreap_fd()` stays
/// the same fd and is not shared with the parent. Async-signal-safe.
pub(super) fn renew_in_child(st: &mut State) -> io::Result<()> {
    let (epfd, efd) = match new_event_fds() {
        Ok(fds) => fds,
        Err(e) => {
            close_in_child(st);
            return Err(e);
        }
    };
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: EVENTFD_TAG };
    // SAFETY: dup3 atomically replaces the inherited fds with the fresh ones;
    // the epoll set then watches the eventfd under its final number.
    unsafe {
        libc::dup3(efd, st.efd, libc::O_CLOEXEC);
        libc::dup3(epfd, st.epfd, libc::O_CLOEXEC);
        if st.spare_fd >= 0 {
            libc::dup3(efd, st.spare_fd, libc::O_CLOEXEC);
        }
        libc::epoll_ctl(st.epfd, libc::EPOLL_CTL_DEL, efd, std::ptr::null_mut());
        libc::epoll_ctl(st.epfd, libc::EPOLL_CTL_ADD, st.efd, &mut event);
        libc::fcntl(st.epfd, libc::F_SETFL, libc::O_NONBLOCK);
    }
    sys::close(efd);
    sys::close(epfd);
    Ok(())
}
