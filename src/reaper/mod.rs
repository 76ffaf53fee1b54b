//! The reaper: which children are in scope, who reaps them, and how each exit
//! is delivered exactly once, to the right waiter.
//!
//! All state lives behind one [`Gate`]. The SIGCHLD handler only *tries* the
//! gate; when another thread holds it, the holder runs the pass for it. Memory
//! the handler writes is reserved in ordinary context before the handler can
//! see it, and the handler never allocates.
//!
//! A pid is no identity once reaped: the kernel may hand it to the next child
//! at once. So:
//! - a tracked child (made by `spawn`/`fork`) is created and registered under
//!   the gate ([`Creation`]), so no pass can reap it before it has a slot;
//! - it is reaped through its pidfd, held by the [`keeper`] thread in a private
//!   fd table (so no fork copies it) and reaped there the moment the child
//!   exits, O(1) per exit. A blocking wait for it may claim it and reap it
//!   itself; while the reap fd is in use and no handler runs, the reap fd
//!   watches the keeper's pidfd and the program's own calls reap it (a
//!   "remote" child); otherwise under zreap's handler the reap fd watches it
//!   too, and the handler's passes reap it (a "parked" child, whose exit
//!   does not wake the keeper). Without the keeper the pidfd stays in the shared
//!   table, watched by the reap fd. A child without a pidfd (old kernel, fd
//!   limit) is reaped by pid only while its start time is the one recorded at
//!   creation;
//! - slots of one pid form a chain in creation order ([`table`]), so a wait
//!   for that pid gets the exits in the order the processes were created, and
//!   a wait for a tracked child is answered from tracked slots only, never
//!   from the buffer of untracked exits;
//! - in the all-children scope a pass first *looks* at an exited child
//!   (WNOWAIT) and reaps it through the slot that owns it, if any.
//!
//! Layers, each using only those before it: [`table`] (pure data),
//! [`events`] (the epoll set and eventfd), [`pass`] (signal context),
//! [`handler`], [`watcher`], [`keeper`], [`creation`], [`wait`] and
//! [`install`] (the API).

mod creation;
mod events;
mod handler;
mod install;
mod keeper;
mod pass;
mod pidmap;
mod table;
mod wait;
mod watcher;

pub(crate) use creation::{collect_adopted, collect_private, forget_fds, Creation};
pub use install::{install, uninstall};
pub use table::UNTRACKED_CAPACITY;
pub use wait::{reap_all, reap_fd, try_wait, try_wait_any, wait, wait_any};

use crate::atfork::{self, Concern};
use crate::gate::{self, Gate, GateGuard};
use crate::stats::Counters;
use bitflags::bitflags;
use libc::{c_int, pid_t};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use table::Table;

bitflags! {
    /// Flags for [`install`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct InstallFlags: u32 {
        /// Reap only children made by `spawn`/`fork`; leave every other child
        /// (popen, system, a foreign waitpid) to its own waiter (C: `ZREAP_OWN`).
        const OWN = 0x1;
        /// Become a child subreaper: orphaned descendants come back and are
        /// reaped (C: `ZREAP_SUBREAPER`).
        const SUBREAPER = 0x2;
        /// Install no SIGCHLD handler; reap with [`reap_all`] when [`reap_fd`]
        /// is readable (C: `ZREAP_NO_HANDLER`).
        const NO_HANDLER = 0x4;
    }
}

/// One child's exit: its pid and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The child's pid (no identity any more: the kernel may reuse it).
    pub pid: pid_t,
    /// How it ended.
    pub status: ExitStatus,
}

impl Exit {
    /// An exit from a pid and a `waitpid`-style status word.
    pub fn from_raw(pid: pid_t, wstatus: c_int) -> Exit {
        Exit { pid, status: ExitStatus::from_raw(wstatus) }
    }

    /// The `waitpid`-style status word (`WIFEXITED`, `WEXITSTATUS`, ... apply).
    pub fn wstatus(&self) -> c_int {
        self.status.into_raw()
    }
}

struct Installed {
    flags: InstallFlags,
    /// The disposition to restore; None with NO_HANDLER.
    old_action: Option<libc::sigaction>,
}

pub(crate) struct State {
    ready: bool,
    installed: Option<Installed>,
    /// zreap_fd() was asked for: keep it readable for every child in scope.
    fd_wanted: bool,
    epfd: RawFd,
    efd: RawFd,
    /// An fd kept open so that the start time of a child without a pidfd can
    /// be read even when the fd table is full (see `pass`).
    spare_fd: RawFd,
    /// In a forked child: `epfd`, `efd` and `spare_fd` are still the parent's
    /// (shared) files until [`State::adopt_fds`] replaces or closes them.
    fds_from_parent: bool,
    /// The process the state belongs to: a child made by a raw `clone` (no
    /// fork handlers) has a copy of the state, but not the slots.
    owner: pid_t,
    table: Table,
}

/// What the reaper writes around every `fork()` of the process (the gate's
/// flags, the name of the thread whose fork holds it), at every SIGCHLD (the
/// child it named) and as its waits sleep and wake, on a page of its own
/// that [`register_fork_hooks`] turns into an anonymous mapping a fork gives
/// the child zero-filled (`MADV_WIPEONFORK`).
/// A fork leaves the parent's copy writable, so neither the parent's release
/// of the gate after a fork, nor the handler's run at its child's exit, nor
/// its wakes cost it a page fault; and all-zero is what the child needs: a
/// free gate, no fork holder, no sleeper, no child named, and a state still
/// to adopt ([`State::adopt`]). Where the kernel cannot do that
/// (before Linux 4.14), the child's fork handler does it all ([`WIPED`]
/// false) but for the child named, which it leaves: the child's first pass
/// finds no child of its own under that pid and only wakes its waits.
#[repr(C, align(4096))]
struct ForkPage {
    gate: gate::Flags,
    /// The thread whose fork prepare handler took the gate, 0 for none.
    fork_holder: AtomicUsize,
    /// The watcher's and blocked waits' futex word, and its sleepers.
    wake: AtomicU32,
    sleepers: AtomicU32,
    /// The state behind the gate is this process's: false in the child of a
    /// plain fork until its first use of the library.
    adopted: AtomicBool,
    /// The child the last SIGCHLD named (see `pass::SIGNALLED`); none in a
    /// fork's child, which has no children yet.
    signalled: AtomicI32,
}

const _: () = assert!(std::mem::size_of::<ForkPage>() == 4096, "the fork page outgrew its page");

static FORK_PAGE: ForkPage = ForkPage {
    gate: gate::Flags::new(),
    fork_holder: AtomicUsize::new(0),
    wake: AtomicU32::new(0),
    sleepers: AtomicU32::new(0),
    adopted: AtomicBool::new(false),
    signalled: AtomicI32::new(0),
};

/// A fork gives the child [`FORK_PAGE`] zero-filled: its fork handler must
/// not touch that page (a write, even a read, would cost it a page fault).
static WIPED: &AtomicBool = &HOT.fork_page_wiped;

/// The child of a plain `fork()` adopts the state at its first use of the
/// library ([`State::adopt`]), not in its fork handler: the fork page is
/// wiped, and the kernel tells a process made by glibc's `fork()` from one
/// made by a raw `clone()` (which ran no fork handler, and whose copy of the
/// state may be half-changed: it is left alone there) by its thread-id
/// address ([`crate::sys::bare::tid_address`]).
static ADOPT_LATER: &AtomicBool = &HOT.adopt_later;

/// What the reaper writes as children come and go, on one page of its own:
/// after a fork, the parent's first write to each page costs it a copy of
/// that page, so words spread over two pages would cost every fork two.
#[repr(C, align(4096))]
struct Hot {
    gate: Gate<State>,
    counters: Counters,
    keeper: keeper::Words,
    watcher: watcher::Words,
    pass: pass::Words,
    events: events::Words,
    /// [`State::owner`], for the fork prepare handler, which cannot take the
    /// gate to read it.
    owner_pid: AtomicI32,
    /// See [`WIPED`].
    fork_page_wiped: AtomicBool,
    /// See [`ADOPT_LATER`].
    adopt_later: AtomicBool,
}

const _: () = assert!(std::mem::size_of::<Hot>() == 4096, "the hot words outgrew their page");

static HOT: Hot = Hot {
    gate: Gate::new(
        &FORK_PAGE.gate,
        State {
            ready: false,
            installed: None,
            fd_wanted: false,
            epfd: -1,
            efd: -1,
            spare_fd: -1,
            fds_from_parent: false,
            owner: 0,
            table: Table::new(),
        },
    ),
    counters: Counters::new(),
    keeper: keeper::Words::new(),
    watcher: watcher::Words::new(),
    pass: pass::Words::new(),
    events: events::Words::new(),
    owner_pid: AtomicI32::new(0),
    fork_page_wiped: AtomicBool::new(false),
    adopt_later: AtomicBool::new(false),
};

static REAPER: &Gate<State> = &HOT.gate;

/// The counters `stats` reads, on the page of hot words.
pub(crate) static COUNTERS: &Counters = &HOT.counters;

/// The current counters.
///
/// ```
/// // A fresh process has reaped, dropped and tracked nothing.
/// assert_eq!(zreap::stats(), zreap::Stats::default());
/// ```
pub fn stats() -> crate::Stats {
    let to_adopt = if ADOPT_LATER.load(Ordering::SeqCst) {
        !FORK_PAGE.adopted.load(Ordering::SeqCst)
    } else {
        // A _Fork() child's (no fork handler ran) are its parent's until it
        // takes the state over (State::take_over_unhandled_fork).
        let owner = owner_pid();
        owner != 0 && owner != crate::sys::bare::getpid()
    };
    if to_adopt {
        // A fork child's counters are still its parent's until it adopts.
        drop(lock());
    }
    COUNTERS.snapshot()
}

/// Takes the gate in ordinary context; a pass runs before it is released if
/// the handler asked for one meanwhile.
fn lock() -> GateGuard<'static, State> {
    register_fork_hooks();
    let mut st = REAPER.lock(pass::pass);
    st.adopt();
    watcher::restart_if_needed(&st);
    st
}

/// Gives the reaper's fork hooks to the atfork owner, once, before the gate
/// is first taken (never under it); first makes [`FORK_PAGE`] a page a fork
/// wipes, and has zreap's preload shim, if the process runs under it, leave
/// the children to the library. Other threads wait for that: a gate taken on
/// the page before it is moved could be copied free. The child of a fork made
/// meanwhile (by a thread that does not use the library) does it again itself.
fn register_fork_hooks() {
    /// 0: not yet; DONE: done; else the pid of the process doing it.
    static STEP: AtomicI32 = AtomicI32::new(0);
    const DONE: i32 = -1;
    if STEP.load(Ordering::Acquire) == DONE {
        return;
    }
    let me = crate::sys::bare::getpid();
    loop {
        match STEP.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(DONE) => return,
            Err(registrar) if registrar == me => crate::sys::bare::sched_yield(),
            Err(registrar) => {
                // Forked while the parent did it: no thread here will finish.
                let _ = STEP.compare_exchange(registrar, 0, Ordering::AcqRel, Ordering::Acquire);
            }
        }
    }
    stand_down_preload_shim();
    let page = &FORK_PAGE as *const ForkPage as *const u8;
    // SAFETY: FORK_PAGE is page-aligned and one page long, so no other object
    // shares its page, and no thread uses it before STEP is DONE (the gate is
    // only taken after this function returned, the handler and the fork hooks
    // are not installed yet).
    let wiped = unsafe { crate::sys::wipe_on_fork(page, std::mem::size_of::<ForkPage>()) }.is_ok();
    WIPED.store(wiped, Ordering::SeqCst);
    // This thread was made by glibc: the kernel can tell a fork's child.
    let tid_address_known = crate::sys::bare::tid_address().is_some_and(|address| address != 0);
    ADOPT_LATER.store(wiped && tid_address_known, Ordering::SeqCst);
    FORK_PAGE.adopted.store(true, Ordering::SeqCst);
    atfork::set_hooks(Concern::Reaper, Some(before_fork), Some(after_fork_parent), Some(reset_in_child));
    STEP.store(DONE, Ordering::Release);
}

/// Tells zreap's `LD_PRELOAD` shim (`libzreap_preload.so`), if the process
/// runs under it, that the library manages the children from now on. The
/// shim would otherwise reap them too (its handler wrapper or its thread) and
/// take the statuses the library's waits answer from. Nothing without it.
///
/// Looked up only where `LD_PRELOAD` or `/etc/ld.so.preload` names the shim:
/// dlsym allocates the error message of a symbol it does not find, which the
/// child of a fork made while another thread allocated must not do (this runs
/// at the first call in such a child too). getenv, open and read take no lock
/// and allocate nothing. Not recognised: a renamed shim, one given to
/// `ld.so --preload`, and `LD_PRELOAD` removed from the environment before.
fn stand_down_preload_shim() {
    const SHIM: &[u8] = b"libzreap_preload";
    let names_shim = |list: &[u8]| list.windows(SHIM.len()).any(|w| w == SHIM);
    // SAFETY: a NUL-terminated name.
    let preload = unsafe { libc::getenv(c"LD_PRELOAD".as_ptr()) };
    // SAFETY: getenv returned NULL or a C string of the environment.
    let in_environment = !preload.is_null() && names_shim(unsafe { std::ffi::CStr::from_ptr(preload) }.to_bytes());
    if !in_environment {
        let mut list = [0u8; 4096];
        let read = crate::sys::read_head(c"/etc/ld.so.preload", &mut list);
        if !read.is_ok_and(|n| names_shim(&list[..n])) {
            return;
        }
    }
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the loaded objects.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"zreap_preload_stand_down".as_ptr()) };
    if !symbol.is_null() {
        // SAFETY: the shim's stub defines it as `void zreap_preload_stand_down(void)`.
        let stand_down: extern "C" fn() = unsafe { std::mem::transmute(symbol) };
        stand_down();
    }
}

/// Whether `action` (a `sa_sigaction` value) is zreap's SIGCHLD handler.
/// Async-signal-safe.
pub(crate) fn is_sigchld_handler(action: libc::sighandler_t) -> bool {
    action == handler::handler_address()
}

/// In zdaemonize's daemon, once set up: it may start a keeper, as any
/// process. Adopts the state first, which would otherwise forbid it again.
/// Where zreap's handler stayed installed, makes the fds the daemon closed
/// again, so that the handler reaps the daemon's children; if that fails,
/// the daemon's next call into the library tries again. System calls only:
/// the untracked buffer came reserved from the caller's process.
pub(crate) fn resume_in_daemon() {
    let mut st = lock();
    keeper::allow_in_daemon();
    if st.handler_active() && handler::is_installed().unwrap_or(false) {
        let _ = st.ensure_ready();
    }
}

fn owner_pid() -> pid_t {
    HOT.owner_pid.load(Ordering::SeqCst)
}

impl State {
    /// In the child of a plain `fork()` (one made while no tracked child was
    /// being created), on its first use of the library (any call, or the
    /// handler's first pass), under the gate: forgets what is the parent's.
    /// The fork handler left it for now, so that a child that execs or exits
    /// without calling the library writes none of the pages it shares with
    /// its parent (each such write costs a page fault and a copy). Then the
    /// fds, as [`State::adopt_fds`]. False in a raw clone's copy of the
    /// process, whose state is not its own (see [`ADOPT_LATER`]).
    /// Async-signal-safe.
    fn adopt(&mut self) -> bool {
        let ours = self.adopt_state();
        self.adopt_fds();
        ours
    }

    /// [`State::adopt`] without the fds. Async-signal-safe.
    fn adopt_state(&mut self) -> bool {
        if !ADOPT_LATER.load(Ordering::SeqCst) {
            return self.take_over_unhandled_fork();
        }
        if FORK_PAGE.adopted.load(Ordering::SeqCst) {
            return true;
        }
        if crate::sys::bare::tid_address() == Some(0) {
            return false;
        }
        // The fork handler forgot a creation under way at the fork, and the
        // fork holder came cleared: what this process's threads create or
        // hold since is theirs, and stays.
        keeper::forget_in_child();
        self.forget_parents_children();
        FORK_PAGE.adopted.store(true, Ordering::SeqCst);
        true
    }

    /// Where the state is not adopted later ([`ADOPT_LATER`] false: no
    /// `MADV_WIPEONFORK` before Linux 4.14, or no thread-id address), the
    /// child handler of `fork()` resets it. A child of glibc's `_Fork()` runs
    /// no fork handlers and still holds its parent's state, whose slots the
    /// fork left out: it is reset here, at the child's first use of the
    /// library (c-tests/reaper_underscore_fork_child.c runs with
    /// `MADV_WIPEONFORK` refused). False in a raw clone's copy (no thread-id
    /// address), whose state is not its own. Async-signal-safe: `getpid`,
    /// `prctl` and [`State::forget_parents_children`].
    fn take_over_unhandled_fork(&mut self) -> bool {
        if self.owner == 0 || self.owner == crate::sys::bare::getpid() {
            return true;
        }
        if crate::sys::bare::tid_address().is_none_or(|address| address == 0) {
            return false;
        }
        // The count of creations under way is left alone: this may run inside
        // this process's own first creation (Creation::begin counts it before
        // it takes the gate, and a SIGCHLD pass may come in between), whose
        // end would then take the count below zero and leave the zfork child
        // of that creation its thread's creation flag. A creation of the
        // parent's under way at the _Fork() left the gate held anyway.
        keeper::forget_in_child();
        self.forget_parents_children();
        true
    }

    /// In a forked child: the parent's children, counters and waiters are not
    /// this process's, and its fds are shared with the parent (they are
    /// replaced or closed by [`State::adopt_fds`]). Async-signal-safe:
    /// raw system calls and clearing of containers that keep their memory.
    fn forget_parents_children(&mut self) {
        self.table.reset_in_child(crate::sys::close);
        self.set_owner(crate::sys::bare::getpid());
        self.fds_from_parent = self.efd >= 0 || self.epfd >= 0 || self.spare_fd >= 0;
        watcher::forget_in_child();
        events::forget_in_child();
        COUNTERS.reset();
    }

    /// Async-signal-safe (a forked child calls it).
    fn set_owner(&mut self, pid: pid_t) {
        self.owner = pid;
        HOT.owner_pid.store(pid, Ordering::SeqCst);
    }

    fn scope_own(&self) -> bool {
        self.installed.as_ref().is_some_and(|i| i.flags.contains(InstallFlags::OWN))
    }

    /// Whether a child in scope may still exit: a tracked one, or in the
    /// all-children scope any unreaped child. Async-signal-safe (in the
    /// all-children scope one `waitid`, which walks the children).
    fn children_left(&self) -> bool {
        self.table.live > 0
            || (!self.scope_own() && crate::sys::waitid(libc::P_ALL, 0, libc::WNOHANG | libc::WNOWAIT).is_ok())
    }

    fn handler_active(&self) -> bool {
        self.installed.as_ref().is_some_and(|i| i.old_action.is_some())
    }

    /// In a forked child, on its first use of the library (any call, or the
    /// SIGCHLD handler's first pass): fresh fds under the same numbers while
    /// `zreap_fd()` is in use, else closes the parent's (the child makes new
    /// ones when it needs them). Left to the first use so that a fork's child
    /// that execs or exits without calling the library makes none of these
    /// system calls (the fds are close-on-exec). Gate held; async-signal-safe.
    fn adopt_fds(&mut self) {
        if !self.fds_from_parent {
            return;
        }
        self.fds_from_parent = false;
        if self.ready && self.fd_wanted {
            if events::renew_in_child(self).is_err() {
                self.ready = false;
            }
        } else {
            events::close_in_child(self);
        }
    }

    /// Creates the eventfd, the epoll set and the spare fd (in a forked child
    /// that left its parent's fds behind, again), and outside `ZREAP_OWN`'s
    /// scope the untracked buffer. Ordinary context only.
    fn ensure_ready(&mut self) -> io::Result<()> {
        self.ensure_ready_for(self.scope_own())
    }

    /// [`State::ensure_ready`] for the scope of the library's own children
    /// (`own`) or all of them, which records exits of untracked children.
    fn ensure_ready_for(&mut self, own: bool) -> io::Result<()> {
        if !own {
            self.table.reserve_buffer()?;
        }
        if self.ready && self.epfd >= 0 {
            return Ok(());
        }
        let (epfd, efd) = events::new_event_fds()?;
        self.epfd = epfd;
        self.efd = efd;
        self.spare_fd = crate::sys::dup_cloexec(efd).unwrap_or(-1);
        // SAFETY: getpid cannot fail.
        self.set_owner(unsafe { libc::getpid() });
        self.ready = true;
        Ok(())
    }
}

// ---------------------------------------------------------------- fork

/// Before `fork()`: takes the gate, so the child inherits a consistent state
/// (unless this thread holds it already, for a [`Creation`]).
fn before_fork() {
    creation::before_fork();
}

/// In the parent after `fork()`: lets the gate go and runs deferred passes.
fn after_fork_parent() {
    creation::after_fork_parent();
}

/// In the child of `fork()`: the parent's children are not ours, its threads
/// are gone, and its fds must not be shared. The keeper's fds are closed at
/// once, and a creation under way (a `zfork`) is this thread's to forget now;
/// the rest waits for the child's first use of the library ([`State::adopt`])
/// where the fork page came zero-filled. Async-signal-safe: raw system calls
/// and clearing of containers that keep their memory; the gate was taken
/// before the fork, so the state is consistent.
///
/// A plain fork's child runs only this much of the library, which it has to
/// map again page by page: it shares a section with the other fork-child
/// hooks (see [`crate::atfork`]), and the rest is [`reset_now_in_child`].
#[link_section = ".zreap_fork_child"]
fn reset_in_child() {
    keeper::close_parents_fds_in_child();
    // Read only: a plain fork's child writes none of zreap's pages.
    if !ADOPT_LATER.load(Ordering::SeqCst) || pass::creation_under_way() {
        reset_now_in_child();
    }
}

/// The part of [`reset_in_child`] for the child of a `zfork` (its creation
/// is this thread's to forget) or of any fork where the state cannot be
/// adopted later. Async-signal-safe, as that is.
#[cold]
#[inline(never)]
fn reset_now_in_child() {
    let wiped = WIPED.load(Ordering::SeqCst);
    creation::forget_creation_in_child(wiped);
    if ADOPT_LATER.load(Ordering::SeqCst) {
        return;
    }
    // SAFETY: the gate was taken before the fork (before_fork or a Creation),
    // or the forking process was a raw clone's copy whose gate no thread of
    // it could let go (before_fork); the child has one thread, this one.
    let st = unsafe { REAPER.value_mut() };
    keeper::forget_in_child();
    st.forget_parents_children();
    if !wiped {
        // SAFETY: the fork child of a fork made with the gate held (see above).
        unsafe { REAPER.reset_in_child() };
    }
}
