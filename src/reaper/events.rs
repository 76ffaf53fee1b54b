//! The reap fd: an epoll set holding an eventfd (readable while exits wait
//! for delivery) and every tracked child's pidfd.
//!
//! Signal context: `sync_eventfd`, `unwatch` and `renew_in_child` are
//! async-signal-safe (raw system calls only).

use super::State;
use crate::sys;
use std::io;
use std::os::fd::RawFd;

/// The epoll data of the eventfd; a pidfd's is its slot index.
pub(super) const EVENTFD_TAG: u64 = u64::MAX;

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

/// Stops watching a pidfd and closes it (-1: nothing). Async-signal-safe.
pub(super) fn unwatch(st: &State, pidfd: RawFd) {
    if pidfd >= 0 {
        // SAFETY: epfd and pidfd are fds the library owns; a NULL event is allowed for DEL.
        unsafe { libc::epoll_ctl(st.epfd, libc::EPOLL_CTL_DEL, pidfd, std::ptr::null_mut()) };
        sys::close(pidfd);
    }
}

/// Makes the eventfd readable exactly when undelivered exits exist (only
/// while the reap fd is in use). Async-signal-safe.
pub(super) fn sync_eventfd(st: &State) {
    if !st.fd_wanted {
        return;
    }
    if st.table.has_records() {
        sys::eventfd_signal(st.efd);
    } else {
        sys::eventfd_drain(st.efd);
    }
}

/// In a forked child: fresh fds under the same numbers, so `zreap_fd()` stays
/// the same fd and is not shared with the parent. Async-signal-safe.
pub(super) fn renew_in_child(st: &mut State) -> io::Result<()> {
    let (epfd, efd) = match new_event_fds() {
        Ok(fds) => fds,
        Err(e) => {
            [st.efd, st.epfd, st.spare_fd].into_iter().for_each(sys::close);
            st.spare_fd = -1;
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
