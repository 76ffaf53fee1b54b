//! The keeper: an internal thread with a private fd table that holds the
//! pidfd of every tracked child and reaps each child the moment it exits.
//!
//! Why a private table: a pidfd in the process's fd table is copied by every
//! later `fork`, `clone` and `posix_spawn` of anyone in the process and closed
//! again by every `exec`, so with thousands of live children every start paid
//! for all of them. The shared table holds three fds of the keeper's: one end
//! of a socket, its epoll set and its bell (an eventfd). A new child's pidfd
//! is added to the keeper's epoll set, sent over the socket (SCM_RIGHTS) and
//! closed there while the gate is held, so no fork ever copies it.
//!
//! Why the socket does not wake the keeper: a wake per start costs a context
//! switch, and a fork made while the keeper runs on another CPU flushes that
//! CPU's TLB too. The keeper watches the child's pidfd from the start (the
//! message in flight keeps the file and its registration alive) and takes the
//! messages off the socket only when it needs a pidfd, or when the bell rings
//! (the socket is full, a pass is asked for, a remote child was released).
//!
//! Why a bare thread where it can be one ([`sys::bare`]): a pthread puts the
//! process on glibc's multi-threaded paths for good, and every later `fork()`
//! of the program's own then writes malloc's and stdio's locks in parent and
//! child. In a process that cannot change its credentials the keeper is made
//! with `clone` alone, which glibc never sees; elsewhere it is a pthread. The
//! code is the same: everything the keeper runs follows the bare thread's
//! rules (raw system calls only, no errno, no allocation but its own
//! mappings, no lock but the gate, no panic).
//!
//! The keeper never runs a pass: the pass uses fd numbers of the shared table,
//! which mean other files here. It only records exits in the table (under the
//! gate) and hands deferred passes back to the program's threads with a
//! SIGCHLD of the process's own.
//!
//! A blocking wait for one kept child may [`claim`] it and reap it itself:
//! the keeper then only closes the child's pidfd when it turns readable.
//! A remote child is not watched here at all: the passes reap it when the
//! reap fd reports it, and hand it back with [`release_remote`] for its pidfd
//! to be closed at the keeper's next wake. It is one made while the reap fd
//! is in use, in the scope of the library's own children or without a
//! handler (the program's calls run those passes), or else one made under
//! zreap's handler (a parked child: the handler's passes reap it).
//!
//! Signal context: [`kick`] is async-signal-safe (an atomic store and one
//! send); [`forget_in_child`] is post-fork code (a close and atomic stores).
//! A forked child starts no keeper (see [`FORKED`]), except zdaemonize's
//! daemon once it is set up.

use super::{watcher, State, REAPER};
use crate::sys::{self, bare, MappedVec, Received, Waited};
use libc::{c_int, c_void, pid_t};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};

/// The shared table's end of the keeper's socket; -1 while no keeper runs.
static TX: &AtomicI32 = &super::HOT.keeper.tx;
/// The keeper's epoll set, in the shared table.
static EPOLL: &AtomicI32 = &super::HOT.keeper.epoll;
/// The keeper's bell, in the shared table: an eventfd its epoll set watches.
static BELL: &AtomicI32 = &super::HOT.keeper.bell;
/// Messages sent and not yet taken off the socket by the keeper.
static QUEUED: &AtomicUsize = &super::HOT.keeper.queued;
/// A pass met a kept child that has exited: the keeper must reap it and then
/// have a pass run again.
static KICKED: &AtomicBool = &super::HOT.keeper.kicked;
/// Pidfds sent to the keeper and not yet closed there.
static KEPT: &AtomicUsize = &super::HOT.keeper.kept;
/// Kept children claimed by a blocking wait, as [`identity`]s (0: a free
/// cell). The keeper reads them without the gate: a child's pidfd that turns
/// readable while its claim is here is closed at once, and the claim cleared.
static CLAIMS: &[AtomicU64; 64] = &super::HOT.keeper.claims;
/// Remote children reaped by the program, as [`identity`]s (0: a free cell),
/// whose pidfds the keeper closes when it next wakes.
static DEAD: &[AtomicU64; 64] = &super::HOT.keeper.dead;

/// This module's words on the reaper's page of hot words ([`super::Hot`]).
pub(super) struct Words {
    tx: AtomicI32,
    epoll: AtomicI32,
    bell: AtomicI32,
    queued: AtomicUsize,
    kicked: AtomicBool,
    forked: AtomicBool,
    kept: AtomicUsize,
    claims: [AtomicU64; 64],
    dead: [AtomicU64; 64],
}

impl Words {
    pub(super) const fn new() -> Words {
        Words {
            tx: AtomicI32::new(-1),
            epoll: AtomicI32::new(-1),
            bell: AtomicI32::new(-1),
            queued: AtomicUsize::new(0),
            kicked: AtomicBool::new(false),
            forked: AtomicBool::new(false),
            kept: AtomicUsize::new(0),
            claims: [const { AtomicU64::new(0) }; 64],
            dead: [const { AtomicU64::new(0) }; 64],
        }
    }
}

/// The epoll data of the bell; a pidfd's is its child's [`identity`].
const BELL_TAG: u64 = u64::MAX;
/// Message flags: the child is remote; the message only says a remote child
/// is dead (no fd).
const FLAG_REMOTE: u32 = 1;
const FLAG_DEAD: u32 = 2;
/// Message flag: the keeper watches a remote child it holds from now on (no fd).
const FLAG_WATCH: u32 = 4;
/// Fds the keeper's table needs besides pidfds, with a margin.
const OWN_FDS: usize = 8;
/// How often a start retries a send refused for too many fds in flight (the
/// user's other processes count too) before the child is watched without the keeper.
const TOO_MANY_REFS_TRIES: u32 = 100;
/// Messages left on the socket before a start rings the bell: pidfds in flight
/// count against RLIMIT_NOFILE for every process of the user.
const DRAIN_AT: usize = 32;

/// This process is the child of a `fork()` (and has not exec'd): starting a
/// thread here is not async-signal-safe (an allocator lock another thread of
/// the parent held at the fork stays held, as ASan's does), so no keeper is
/// started and children are watched in the shared table. Set when the child
/// adopts the state ([`super::State::adopt`]).
static FORKED: &AtomicBool = &super::HOT.keeper.forked;

/// Starts the keeper unless it runs. Gate held, `st` ready. False when it
/// cannot be started (children are then watched in the shared table).
pub(super) fn ready(st: &State) -> bool {
    TX.load(SeqCst) >= 0 || (!FORKED.load(SeqCst) && start(st.efd).is_ok())
}

/// In zdaemonize's daemon, once set up: it is a process of its own now, free
/// to start threads, as any daemon is. Gate held, state adopted.
pub(super) fn allow_in_daemon() {
    FORKED.store(false, SeqCst);
}

/// Whether the keeper's fd table has room for one more pidfd.
fn has_room() -> bool {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
    (KEPT.load(SeqCst) + OWN_FDS) as u64 <= limit
}

/// Hands a new child's pidfd to the keeper and closes it here. Gate held;
/// the slot `idx` (of generation `generation`) is live. The keeper's epoll set
/// watches the pidfd from here on; with `remote` it only holds the pidfd (the
/// reap fd's set watches it; see [`release_remote`]). False when it could not
/// be handed over (the caller keeps the pidfd).
pub(super) fn give(idx: u32, generation: u32, pid: pid_t, pidfd: RawFd, remote: bool) -> bool {
    let tx = TX.load(SeqCst);
    if tx < 0 || !has_room() {
        return false;
    }
    // One-shot: the registration lives as long as the file, and a vfork
    // child of another thread may hold a copy of the pidfd for a while.
    let watch = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
    if !remote && sys::epoll_add(EPOLL.load(SeqCst), pidfd, watch, identity(idx, generation)).is_err() {
        return false;
    }
    // Counted before the keeper can see it (it uncounts once done).
    KEPT.fetch_add(1, SeqCst);
    if !send(tx, &encode(idx, generation, pid, if remote { FLAG_REMOTE } else { 0 }), pidfd) {
        KEPT.fetch_sub(1, SeqCst);
        if !remote {
            sys::epoll_del(EPOLL.load(SeqCst), pidfd);
        }
        return false;
    }
    sys::close(pidfd);
    true
}

/// Sends a message with `fd` to the keeper, ringing its bell while the socket
/// is full. Gate held. False when it cannot be sent.
fn send(tx: RawFd, message: &sys::Message, fd: RawFd) -> bool {
    let mut refused = 0;
    loop {
        match sys::send_message(tx, message, fd) {
            Ok(()) => {
                if QUEUED.fetch_add(1, SeqCst) + 1 >= DRAIN_AT {
                    ring();
                }
                return true;
            }
            // The keeper empties the socket when rung, even while it waits
            // for the gate.
            Err(libc::EAGAIN) => {
                ring();
                wait_writable(tx);
            }
            // The fds in flight (of every process of this user) exceed
            // RLIMIT_NOFILE; the keeper taking ours may be enough.
            Err(libc::ETOOMANYREFS) if refused < TOO_MANY_REFS_TRIES => {
                refused += 1;
                ring();
                bare::sched_yield();
            }
            Err(_) => return false,
        }
    }
}

/// Wakes the keeper. Async-signal-safe.
fn ring() {
    sys::eventfd_signal(BELL.load(SeqCst));
}

/// Asks the keeper to reap the kept children that have exited and then to
/// have a pass run again. Async-signal-safe.
pub(super) fn kick() {
    if !KICKED.swap(true, SeqCst) {
        ring();
    }
}

/// A remote child was reaped (or lost): the keeper closes its pidfd when it
/// next wakes, or at once when no cell is free. Async-signal-safe. Gate held.
pub(super) fn release_remote(idx: u32, generation: u32) {
    let id = identity(idx, generation);
    if !DEAD.iter().any(|cell| cell.compare_exchange(0, id, SeqCst, SeqCst).is_ok()) {
        // Lost only if the socket is full too: a pidfd then stays open in the
        // keeper's private table, which no fork copies.
        if sys::send_message(TX.load(SeqCst), &encode(idx, generation, 0, FLAG_DEAD), -1).is_ok() {
            QUEUED.fetch_add(1, SeqCst);
        }
        ring();
    }
}

/// Has the keeper watch and reap remote child `idx` (of `generation`),
/// whose pidfd it holds, from now on, as any kept child. Gate held; the slot
/// was just made kept and not remote (`Table::unpark`). With `may_wait`
/// (ordinary context) a full socket is waited for; without, the send is
/// tried once, which is async-signal-safe. False when it could not be sent.
pub(super) fn watch(idx: u32, generation: u32, pid: pid_t, may_wait: bool) -> bool {
    let tx = TX.load(SeqCst);
    let message = encode(idx, generation, pid, FLAG_WATCH);
    let sent = if may_wait {
        tx >= 0 && send(tx, &message, -1)
    } else if sys::send_message(tx, &message, -1).is_ok() {
        QUEUED.fetch_add(1, SeqCst);
        true
    } else {
        false
    };
    if sent {
        ring();
    }
    sent
}

/// A kept child's identity: its slot and the slot's generation (never 0).
fn identity(idx: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(idx)
}

/// Takes kept child `idx` (of `generation`) away from the keeper, for a
/// blocking wait that reaps it itself. Gate held, the slot live, kept and not
/// claimed. False when every claim cell is in use.
pub(super) fn claim(idx: u32, generation: u32) -> bool {
    let id = identity(idx, generation);
    CLAIMS.iter().any(|cell| cell.compare_exchange(0, id, SeqCst, SeqCst).is_ok())
}

/// Clears the claim on a kept child, if there is one; true when there was.
fn unclaim(idx: u32, generation: u32) -> bool {
    let id = identity(idx, generation);
    CLAIMS.iter().any(|cell| cell.compare_exchange(id, 0, SeqCst, SeqCst).is_ok())
}

/// In a forked child (its fork handler): closes the keeper's fds, which it
/// inherited from its parent. The parent had adopted its state before it
/// forked (see `before_fork`), so these are the fds of its keeper, not
/// numbers its own parent's keeper once had. Post-fork code
/// (async-signal-safe); reads only, so the page of hot words is not copied.
#[inline]
pub(super) fn close_parents_fds_in_child() {
    if TX.load(SeqCst) >= 0 {
        for fd in [TX, EPOLL, BELL] {
            sys::close(fd.load(SeqCst));
        }
    }
}

/// In a forked child: the keeper is the parent's, and its fds are closed
/// ([`close_parents_fds_in_child`]); the next child made here starts a keeper
/// of its own. Async-signal-safe.
pub(super) fn forget_in_child() {
    FORKED.store(true, SeqCst);
    for fd in [TX, EPOLL, BELL] {
        fd.store(-1, SeqCst);
    }
    QUEUED.store(0, SeqCst);
    KICKED.store(false, SeqCst);
    KEPT.store(0, SeqCst);
    CLAIMS.iter().chain(DEAD).for_each(|cell| cell.store(0, SeqCst));
}

fn encode(idx: u32, generation: u32, pid: pid_t, flags: u32) -> sys::Message {
    let mut message = [0; 16];
    message[..4].copy_from_slice(&idx.to_ne_bytes());
    message[4..8].copy_from_slice(&generation.to_ne_bytes());
    message[8..12].copy_from_slice(&pid.to_ne_bytes());
    message[12..].copy_from_slice(&flags.to_ne_bytes());
    message
}

fn decode(message: &sys::Message) -> (u32, u32, pid_t, u32) {
    let word = |at: usize| [message[at], message[at + 1], message[at + 2], message[at + 3]];
    let (idx, generation) = (u32::from_ne_bytes(word(0)), u32::from_ne_bytes(word(4)));
    (idx, generation, pid_t::from_ne_bytes(word(8)), u32::from_ne_bytes(word(12)))
}

fn wait_writable(fd: RawFd) {
    let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 100) };
}

/// The fds a starting keeper takes into its table: the socket's receiving
/// end, its epoll set, its bell and the reap fd's eventfd (set by [`start`],
/// under the gate).
static START_FDS: [AtomicI32; 4] = [const { AtomicI32::new(-1) }; 4];
/// How the keeper's start went: [`PENDING`], then 0 or the errno it failed with.
static STARTED: AtomicU32 = AtomicU32::new(PENDING);
const PENDING: u32 = u32::MAX;

/// Starts the keeper (a bare thread where credentials are fixed, else a
/// pthread) and waits until it has its private fd table.
fn start(efd: RawFd) -> io::Result<()> {
    let (tx, rx) = sys::stream_socketpair()?;
    // SAFETY: creates an fd from flags.
    let bell = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    let made = if bell < 0 { Err(io::Error::last_os_error()) } else { Ok(bell) };
    let (epoll, bell) =
        match made.and_then(|bell| Ok((sys::epoll_create().map_err(io::Error::from_raw_os_error)?, bell))) {
            Ok(fds) => fds,
            Err(error) => {
                [bell, tx, rx].into_iter().for_each(sys::close);
                return Err(error);
            }
        };
    for (cell, fd) in START_FDS.iter().zip([rx, epoll, bell, efd]) {
        cell.store(fd, SeqCst);
    }
    STARTED.store(PENDING, SeqCst);
    let spawned =
        if bare::spawn(keeper_on_bare_thread) { Ok(()) } else { sys::spawn_pthread(keeper_on_pthread, 256 * 1024) };
    let mut outcome = match spawned {
        Ok(()) => PENDING,
        Err(errno) => errno as u32,
    };
    while outcome == PENDING {
        sys::futex_wait(&STARTED, PENDING, None);
        outcome = STARTED.load(SeqCst);
    }
    // The keeper has its own copy of the receiving end now (or failed).
    sys::close(rx);
    if outcome == 0 {
        QUEUED.store(0, SeqCst);
        EPOLL.store(epoll, SeqCst);
        BELL.store(bell, SeqCst);
        TX.store(tx, SeqCst);
        Ok(())
    } else {
        [tx, epoll, bell].into_iter().for_each(sys::close);
        Err(io::Error::from_raw_os_error(outcome as c_int))
    }
}

/// The keeper on a bare thread ([`sys::bare`]). Returns only if it could
/// not start.
extern "C" fn keeper_on_bare_thread(_: *mut c_void) -> c_int {
    keeper_main();
    0
}

/// The keeper on a pthread ([`sys::spawn_pthread`]), named for `ps` and
/// debuggers. Returns only if it could not start.
extern "C" fn keeper_on_pthread(_: *mut c_void) -> *mut c_void {
    // SAFETY: a NUL-terminated name of under 16 bytes for this thread.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"zreap-keeper".as_ptr()) };
    keeper_main();
    std::ptr::null_mut()
}

/// How much nicer the keeper is than the thread that starts it (see
/// [`keeper_main`]).
const KEEPER_NICER: i32 = 10;

/// Sets up the keeper's private table, says how that went, and serves for
/// good. On the keeper's thread, by the bare thread's rules.
fn keeper_main() {
    // Ten steps nicer than the thread that started it (at most 19): when a
    // child exits, the thread blocked in zwait() for it and the keeper (its
    // pidfd turns readable) wake together, and on a busy CPU the waiter now
    // runs first, without the keeper's check of the claim before it.
    // Measured in pairs on one CPU: 0.91-0.97x the exit-to-delivery time at
    // nice 0 (0.89-0.94x at 19 steps, which would leave the keeper too little
    // of a CPU that a program keeps busy). Best effort.
    // SAFETY: PRIO_PROCESS with who 0 reads this thread's nice value, which
    // it inherited, as 20 - nice.
    if let Ok(inverted) = unsafe { bare::syscall6(libc::SYS_getpriority, [libc::PRIO_PROCESS as usize, 0, 0, 0, 0, 0]) }
    {
        let nice = (20 - inverted as i32 + KEEPER_NICER).min(19);
        // SAFETY: PRIO_PROCESS with who 0 sets this thread's nice value.
        let _ =
            unsafe { bare::syscall6(libc::SYS_setpriority, [libc::PRIO_PROCESS as usize, 0, nice as usize, 0, 0, 0]) };
    }
    let fds = [0, 1, 2, 3].map(|i| START_FDS[i].load(SeqCst));
    let outcome = match Keeper::new(fds) {
        Ok(keeper) => {
            STARTED.store(0, SeqCst);
            sys::futex_wake_all(&STARTED);
            keeper.run()
        }
        Err(errno) => errno as u32,
    };
    STARTED.store(outcome, SeqCst);
    sys::futex_wake_all(&STARTED);
}

/// A kept child as the keeper knows it; `pidfd` is -1 until it is looked up
/// in the table by slot.
#[derive(Clone, Copy)]
struct Kept {
    idx: u32,
    generation: u32,
    pidfd: RawFd,
}

impl Kept {
    const NONE: Kept = Kept { idx: 0, generation: 0, pidfd: -1 };

    /// Whether slot `idx` still holds this child, live and the keeper's.
    fn is_in(&self, st: &State) -> bool {
        let slot = st.table.slot(self.idx);
        slot.generation == self.generation && slot.kept && slot.state == super::table::SlotState::Live
    }
}

/// The pidfd the keeper holds for a slot's child of `generation` (kept or
/// remote), or what became of it: [`DEAD_EARLY`], [`CLOSED`]. A generation
/// not here yet has its message still on the socket.
#[derive(Clone, Copy)]
struct Held {
    generation: u32,
    pidfd: RawFd,
}

/// Released before its message was taken: its pidfd is closed on arrival.
const DEAD_EARLY: RawFd = -2;
/// Its pidfd was closed.
const CLOSED: RawFd = -3;

/// Whether generation `a` of a slot came after generation `b`.
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// A kept child whose pidfd did not reach this table.
#[derive(Clone, Copy)]
struct Lost {
    idx: u32,
    generation: u32,
    pid: pid_t,
    remote: bool,
}

struct Keeper {
    rx: RawFd,
    bell: RawFd,
    efd: RawFd,
    epfd: RawFd,
    /// The pidfds of kept and remote children, by slot.
    held: MappedVec<Held>,
    /// Children whose pidfd is readable while they cannot be reaped yet (a
    /// tracer holds them), looked at again every [`Keeper::POLL_MS`].
    stalled: MappedVec<Kept>,
    /// Children handed back to the passes as children without a pidfd.
    lost: MappedVec<Lost>,
}

/// Closes the pidfd of a child this table no longer holds.
fn close_kept(pidfd: RawFd) {
    sys::close(pidfd);
    KEPT.fetch_sub(1, SeqCst);
}

impl Keeper {
    const POLL_MS: c_int = 50;
    /// Events taken per wake.
    const BATCH: usize = 64;

    /// In the keeper thread: the private fd table keeps only the socket's
    /// receiving end, the epoll set, the bell and the eventfd (under the same
    /// numbers).
    fn new([rx, epfd, bell, efd]: [RawFd; 4]) -> Result<Keeper, c_int> {
        sys::private_fd_table([rx, epfd, bell, efd])?;
        let mut keeper =
            Keeper { rx, bell, efd, epfd, held: MappedVec::new(), stalled: MappedVec::new(), lost: MappedVec::new() };
        // Room for a batch of lost children, which need it most when memory is short.
        let _ = keeper.lost.try_reserve(Self::BATCH);
        sys::epoll_add(epfd, bell, libc::EPOLLIN as u32, BELL_TAG)?;
        Ok(keeper)
    }

    fn run(mut self) -> ! {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; Self::BATCH];
        loop {
            let timeout = if self.stalled.is_empty() { -1 } else { Self::POLL_MS };
            let n = sys::epoll_wait(self.epfd, &mut events, timeout);
            let mut ready = [Kept::NONE; Self::BATCH];
            let mut n_ready = 0;
            for event in &events[..n] {
                let data = event.u64;
                if data == BELL_TAG {
                    sys::eventfd_drain(self.bell);
                    self.drain();
                    continue;
                }
                let (idx, generation) = (data as u32, (data >> 32) as u32);
                // A child a wait has claimed is that wait's to reap: no gate
                // is needed to let it go.
                if unclaim(idx, generation) {
                    self.release(idx, generation);
                } else {
                    ready[n_ready] = Kept { idx, generation, pidfd: -1 };
                    n_ready += 1;
                }
            }
            self.close_dead();
            let work = n_ready > 0 || !self.stalled.is_empty() || !self.lost.is_empty();
            if work || KICKED.load(SeqCst) {
                self.reap_and_record(&mut ready[..n_ready]);
            }
        }
    }

    /// Closes the pidfds of the remote children the program has released.
    fn close_dead(&mut self) {
        for cell in DEAD {
            // Read first: a store to every cell at every wake would copy the
            // page after each fork.
            if cell.load(SeqCst) != 0 {
                let id = cell.swap(0, SeqCst);
                self.release(id as u32, (id >> 32) as u32);
            }
        }
    }

    /// The pidfd held for child `idx` of `generation`, or -1.
    fn pidfd_of(&self, idx: u32, generation: u32) -> RawFd {
        match self.held.get(idx as usize) {
            Some(held) if held.generation == generation && held.pidfd >= 0 => held.pidfd,
            _ => -1,
        }
    }

    /// Child `idx` of `generation` was reaped, lost or released: closes its
    /// pidfd, or notes that it is gone for when its message is taken.
    fn release(&mut self, idx: u32, generation: u32) {
        // Without room the pidfd stays open in this table when it comes,
        // which no fork copies.
        if self.held.grow_to(idx as usize + 1, Held { generation: 0, pidfd: CLOSED }).is_err() {
            return;
        }
        let held = &mut self.held[idx as usize];
        if held.generation == generation {
            if held.pidfd >= 0 {
                close_kept(held.pidfd);
                held.pidfd = CLOSED;
            }
        } else if newer(generation, held.generation) {
            Self::replace(idx, held, Held { generation, pidfd: DEAD_EARLY });
        }
        // Else a note older than what is held (the cells are read in no
        // particular order): that child's pidfd is gone already.
    }

    /// A later child of a slot replaces the one held: the slot was reused, so
    /// that one is done (reaped, lost or released) and its pidfd, if still
    /// here, is closed, and its claim, if any, cleared.
    fn replace(idx: u32, held: &mut Held, by: Held) {
        if held.pidfd >= 0 {
            close_kept(held.pidfd);
            unclaim(idx, held.generation);
        }
        *held = by;
    }

    /// Takes a child's pidfd off the socket into the table by slot.
    fn hold(&mut self, idx: u32, generation: u32, pid: pid_t, pidfd: RawFd, remote: bool) {
        if self.held.grow_to(idx as usize + 1, Held { generation: 0, pidfd: CLOSED }).is_err() {
            close_kept(pidfd);
            self.lose(Lost { idx, generation, pid, remote });
            return;
        }
        let held = &mut self.held[idx as usize];
        if held.generation == generation {
            // Released before it came (or, never, a second message).
            close_kept(pidfd);
            held.pidfd = CLOSED;
        } else if newer(held.generation, generation) {
            // A later child of the slot is here already: this one is gone.
            close_kept(pidfd);
        } else {
            Self::replace(idx, held, Held { generation, pidfd });
        }
    }

    /// Hands a child back to the passes at the next reap, as one without a
    /// pidfd. Without room (out of memory with a batch already waiting) it is
    /// dropped: a wait for it then waits until memory allows again.
    fn lose(&mut self, lost: Lost) {
        let _ = self.lost.try_push(lost);
    }

    /// Takes every message sent so far off the socket: the pidfds of new
    /// children, and the remote children released while the cells were full.
    fn drain(&mut self) {
        for _ in 0..QUEUED.load(SeqCst) {
            let Received::Message(message, fd) = sys::recv_message(self.rx) else { return };
            QUEUED.fetch_sub(1, SeqCst);
            let (idx, generation, pid, flags) = decode(&message);
            if flags & FLAG_DEAD != 0 {
                self.release(idx, generation);
            } else if flags & FLAG_WATCH != 0 {
                self.watch(idx, generation, pid);
            } else if fd >= 0 {
                self.hold(idx, generation, pid, fd, flags & FLAG_REMOTE != 0);
            } else {
                // The table was full: the file, and with it its registration
                // in the epoll set, is gone.
                KEPT.fetch_sub(1, SeqCst);
                self.lose(Lost { idx, generation, pid, remote: flags & FLAG_REMOTE != 0 });
            }
        }
    }

    /// Watches a remote child it holds from now on (see [`watch`]). One that
    /// is done already is left alone; one whose pidfd cannot be watched goes
    /// back to the passes as a child without a pidfd.
    fn watch(&mut self, idx: u32, generation: u32, pid: pid_t) {
        let pidfd = self.pidfd_of(idx, generation);
        if pidfd < 0 {
            return;
        }
        let watch = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
        if sys::epoll_add(self.epfd, pidfd, watch, identity(idx, generation)).is_err() {
            self.release(idx, generation);
            self.lose(Lost { idx, generation, pid, remote: false });
        }
    }

    /// Reaps the children whose pidfd turned readable and the stalled ones
    /// that have ended, recording each under the gate in the same step (so a
    /// child is always either in the kernel or in the table), then lets the
    /// program's threads know.
    fn reap_and_record(&mut self, ready: &mut [Kept]) {
        // Draining while waiting: a thread holding the gate may be sending.
        while !REAPER.try_acquire_raw() {
            self.drain();
            bare::sched_yield();
        }
        // SAFETY: the gate is held until release_taking_deferred below.
        let st = unsafe { REAPER.value_mut() };
        let before = st.table.next_seq;
        if ready.iter().any(|kept| self.pidfd_of(kept.idx, kept.generation) < 0) {
            // Every message of a child made so far was sent before the gate
            // was let go.
            self.drain();
        }
        for kept in ready.iter_mut() {
            if !kept.is_in(st) || st.table.slot(kept.idx).claimed {
                // Claimed after the check in `run`, or gone.
                unclaim(kept.idx, kept.generation);
                self.release(kept.idx, kept.generation);
                continue;
            }
            kept.pidfd = self.pidfd_of(kept.idx, kept.generation);
            if kept.pidfd < 0 {
                // Its pidfd did not reach this table (see `drain`).
                let pid = st.table.slot(kept.idx).pid;
                self.lose(Lost { idx: kept.idx, generation: kept.generation, pid, remote: false });
                continue;
            }
            let found = sys::waitid(libc::P_PIDFD, kept.pidfd as libc::id_t, libc::WNOHANG | libc::__WALL);
            match found {
                // Without room to wait for it, it is recorded as gone.
                Ok(Waited::NotYet) if self.stalled.try_push(*kept).is_ok() => {}
                _ => self.finish(st, *kept, found),
            }
        }
        let mut i = 0;
        while i < self.stalled.len() {
            let kept = self.stalled[i];
            let found = sys::waitid(libc::P_PIDFD, kept.pidfd as libc::id_t, libc::WNOHANG | libc::__WALL);
            if found.as_ref().is_ok_and(|w| *w == Waited::NotYet) {
                i += 1;
                continue;
            }
            self.stalled.swap_remove(i);
            self.finish(st, kept, found);
        }
        if !self.lost.is_empty() {
            for lost in self.lost.iter() {
                if lost.remote && st.table.slot(lost.idx).generation == lost.generation {
                    // Its registration in the reap fd went with the pidfd.
                    st.table.disarm_remote(lost.idx);
                }
                st.lose_kept(lost.idx, lost.generation, lost.pid);
            }
            self.lost.clear();
            watcher::publish_mode(st);
        }
        let recorded = st.table.next_seq != before;
        let signal_fd = recorded && st.fd_wanted;
        let kicked = KICKED.swap(false, SeqCst);
        let handler = st.handler_active();
        // A pass asked for while the gate was held here (the usual reason: a
        // SIGCHLD for an exit this reaped) must not run here, and it walks
        // every child in the kernel. A thread asleep in a wait, woken below,
        // takes the gate next and runs it on its release, in its own time.
        // Otherwise zreap's handler runs it, on a SIGCHLD sent here. The
        // keeper never walks the children itself: a walk holds the kernel's
        // task list lock, and the program's next fork, made meanwhile on
        // another CPU, would wait for it (5x slower with 10,000 children).
        let to_waiter = recorded && watcher::has_sleepers();
        // SAFETY: taken above by this thread.
        let pending = unsafe {
            if to_waiter {
                REAPER.release_leaving_deferred()
            } else {
                REAPER.release_taking_deferred()
            }
        };
        // After the release, so that a waiter woken here finds the gate free.
        if signal_fd {
            super::events::signal(self.efd);
        }
        if recorded {
            watcher::wake();
        }
        // (Without a handler, passes run in the program's own calls.)
        if handler && (kicked || (pending && !to_waiter)) {
            bare::signal_this_process(libc::SIGCHLD);
        }
    }

    /// Records what a wait for a kept child found and closes its pidfd.
    /// Gate held.
    fn finish(&mut self, st: &mut State, kept: Kept, found: io::Result<Waited>) {
        let status = match found {
            Ok(Waited::Exited(_, status)) => Some(status),
            _ => None,
        };
        self.release(kept.idx, kept.generation);
        if kept.is_in(st) {
            st.table.finish(kept.idx, status);
        }
    }
}

impl State {
    /// A kept child whose pidfd never reached the keeper becomes a child
    /// without a pidfd: identified by its start time, read now (the child is
    /// ours and unreaped unless a foreign wait took it meanwhile), and checked
    /// by the passes. A claimed one stays its wait's to reap. Gate held, in
    /// the keeper (no fd of the shared table is used: the start time is read
    /// without the spare fd).
    fn lose_kept(&mut self, idx: u32, generation: u32, pid: pid_t) {
        let slot = self.table.slot(idx);
        let live = slot.state == super::table::SlotState::Live;
        if slot.generation != generation || !slot.kept || !live || slot.claimed {
            unclaim(idx, generation);
            return;
        }
        self.table.set_remote(idx, false);
        self.table.set_kept(idx, false);
        self.table.slot_mut(idx).start_time = sys::proc_start_time(pid).unwrap_or(0);
        self.table.add_fallback(idx);
    }
}
