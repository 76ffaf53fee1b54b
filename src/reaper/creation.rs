//! Making tracked children: the gate is held from before a child is created
//! until it is registered, so no pass can reap (and misfile) a child that has
//! no slot yet; also the library's own children (zdaemonize's intermediate).
//!
//! Post-fork code: [`forget_creation_in_child`] and [`Creation::in_child`] run
//! in a forked child and are async-signal-safe (a thread-local flag only).

use super::{events, keeper, lock, pass, watcher, REAPER};
use crate::sys;
use libc::pid_t;
use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

thread_local! {
    /// This thread holds the gate across a fork of its own ([`Creation`]):
    /// the fork handlers must neither take nor release it.
    static CREATING: Cell<bool> = const { Cell::new(false) };
    /// Never written: its address names this thread in [`FORK_HOLDER`].
    static THREAD_MARK: u8 = const { 0 };
}

/// The thread whose fork prepare handler took the gate (its [`THREAD_MARK`]'s
/// address), 0 for none; on the reaper's fork page beside the gate's flags
/// ([`super::ForkPage`]). A thread-local flag instead would cost every host
/// `fork()` a page copied in the parent (see
/// `host_fork_copies_no_page_of_zreap_in_the_parent` in tests/rust_api.rs).
static FORK_HOLDER: &AtomicUsize = &super::FORK_PAGE.fork_holder;

/// This thread's name in [`FORK_HOLDER`].
fn this_thread() -> usize {
    THREAD_MARK.with(|mark| mark as *const u8 as usize)
}

/// The gate, held while one tracked child is created and registered. Passes
/// the SIGCHLD handler asks for meanwhile run when it is let go.
pub(crate) struct Creation {
    released: bool,
}

impl Creation {
    /// Takes the gate and prepares what the reaper needs for one more child.
    pub(crate) fn begin() -> io::Result<Creation> {
        super::register_fork_hooks();
        pass::creating();
        REAPER.acquire_raw();
        CREATING.with(|c| c.set(true));
        let creation = Creation { released: false };
        // SAFETY: the gate is held by `creation`, which outlives this borrow.
        let st = unsafe { REAPER.value_mut() };
        st.adopt();
        // A fork child's first call may be zfork/zspawn: its watcher too.
        watcher::restart_if_needed(st);
        st.ensure_ready()?;
        st.table.reserve_slot()?;
        keeper::ready(st);
        Ok(creation)
    }

    /// Registers the new child (`pidfd` is taken over) and lets the gate go.
    pub(crate) fn track(self, pid: pid_t, pidfd: Option<RawFd>) {
        // SAFETY: the gate is held until `self` drops, after this call.
        unsafe { REAPER.value_mut() }.track(pid, pidfd, false);
    }

    /// Registers the library's own child (see [`collect_private`]) and lets
    /// the gate go. Returns its ticket.
    pub(crate) fn track_private(self, pid: pid_t, pidfd: Option<RawFd>) -> u32 {
        // SAFETY: the gate is held until `self` drops, after this call.
        unsafe { REAPER.value_mut() }.track(pid, pidfd, true)
    }

    /// Collects a child that failed before it became the program, so it
    /// leaves no zombie and no record, and lets the gate go.
    pub(crate) fn discard(self, pid: pid_t, pidfd: Option<RawFd>) {
        let _ = match pidfd {
            Some(fd) => sys::waitid(libc::P_PIDFD, fd as libc::id_t, libc::__WALL),
            None => sys::waitid(libc::P_PID, pid as libc::id_t, libc::__WALL),
        };
        if let Some(fd) = pidfd {
            sys::close(fd);
        }
    }

    /// In the child of a fork made under this creation: the fork handler has
    /// already reset the gate. Async-signal-safe.
    pub(crate) fn in_child(mut self) {
        self.released = true;
    }
}

impl Drop for Creation {
    fn drop(&mut self) {
        if !self.released {
            CREATING.with(|c| c.set(false));
            // SAFETY: this Creation took the gate in begin() and still holds it.
            unsafe { REAPER.release_raw(pass::pass) };
            pass::created();
            watcher::wake();
        }
    }
}

/// Before `fork()`: takes the gate unless a [`Creation`] of this thread holds it.
pub(super) fn before_fork() {
    if CREATING.with(Cell::get) {
        return;
    }
    if !REAPER.try_acquire_raw() {
        // A copy of the process made by a raw clone() (no fork handlers; see
        // c-tests/reaper_raw_clone_gate.c) inherits the gate as its parent's
        // threads left it: maybe held by a thread it does not have, forever.
        // Its state is its parent's, which the fork child resets anyway: it
        // forks without the gate.
        let owner = super::owner_pid();
        if owner != 0 && owner != sys::bare::getpid() {
            return;
        }
        REAPER.acquire_raw();
    }
    FORK_HOLDER.store(this_thread(), SeqCst);
    // A fork child that forks before its first use of the library adopts its
    // state now: its own child's fork handler must find no keeper fds (they
    // were its parent's, and it closed them), rather than numbers that may
    // name other files by now.
    // SAFETY: this thread holds the gate, taken above.
    unsafe { REAPER.value_mut() }.adopt_state();
}

/// In the parent after `fork()`: lets the gate go if the prepare handler took it.
pub(super) fn after_fork_parent() {
    let me = this_thread();
    if FORK_HOLDER.load(SeqCst) == me {
        FORK_HOLDER.store(0, SeqCst);
        // SAFETY: before_fork took the gate on this thread (the one that forks).
        unsafe { REAPER.release_raw(pass::pass) };
        watcher::wake();
    }
}

/// In a forked child: this thread holds no creation, and the gate no fork
/// holder (already so when the fork page was `wiped`, which this then leaves
/// alone). Async-signal-safe.
pub(super) fn forget_creation_in_child(wiped: bool) {
    if !wiped {
        FORK_HOLDER.store(0, SeqCst);
    }
    // Only a thread with a creation under way has its flag set. A plain
    // fork's child leaves thread-local storage alone: in the shared library
    // that is a call into the dynamic linker, whose code the child would
    // have to map again.
    if pass::forget_creating_in_child() {
        CREATING.with(|c| c.set(false));
    }
}

/// Waits for a child registered with [`Creation::track_private`] to end and
/// collects it, whoever reaped it. Reaps nothing else.
pub(crate) fn collect_private(ticket: u32, pid: pid_t) {
    let pidfd = {
        let st = lock();
        let fd = st.table.slot(ticket).pidfd;
        (fd >= 0).then(|| sys::dup_cloexec(fd).ok()).flatten()
    };
    let _ = match pidfd {
        Some(fd) => sys::waitid(libc::P_PIDFD, fd as libc::id_t, 0),
        None => sys::waitid(libc::P_PID, pid as libc::id_t, 0),
    };
    if let Some(fd) = pidfd {
        sys::close(fd);
    }
    let mut st = lock();
    let pidfd = st.table.free_slot(ticket);
    events::unwatch(&st, pidfd);
}

/// Collects a failed daemon that a subreaper caller adopted, so it leaves no
/// zombie. If a pass in the ALL scope reaped it first, its record is removed:
/// it is the newest record of that pid, since the daemon reported its pid
/// while it was alive.
pub(crate) fn collect_adopted(pid: pid_t) {
    let mut st = lock();
    if st.table.remove_newest_untracked(pid) {
        events::sync_eventfd(&st);
    } else {
        let _ = sys::waitid(libc::P_PID, pid as libc::id_t, 0);
    }
}

/// In a daemon that has just closed every fd: forget the library's fds (they
/// are gone) so the next call makes new ones. Async-signal-safe in a forked
/// child (the gate is free there, nothing is allocated).
///
/// # Safety
/// Only in a single-threaded child of `fork()` whose fds (the library's
/// included) were all closed: no one else may be using those fd numbers'
/// meaning.
pub(crate) unsafe fn forget_fds() {
    // Not lock(): the fds from the parent are gone, not to be made again.
    let mut st = REAPER.lock(pass::pass);
    st.adopt_state();
    st.fds_from_parent = false;
    st.ready = false;
    st.epfd = -1;
    st.efd = -1;
    st.spare_fd = -1;
}
