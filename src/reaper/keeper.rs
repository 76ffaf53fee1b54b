//! The keeper: an internal thread with a private fd table that holds the
//! pidfd of every tracked child and reaps each child the moment it exits.
//!
//! Why a private table: a pidfd in the process's fd table is copied by every
//! later `fork`, `clone` and `posix_spawn` of anyone in the process and closed
//! again by every `exec`, so with thousands of live children every start paid
//! for all of them. The shared table holds only one end of a socket: a new
//! child's pidfd is sent over it (SCM_RIGHTS) and closed there while the gate
//! is held, so no fork ever copies it.
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
//! A remote child (made while the reap fd is in use, in the scope of the
//! library's own children or without a handler) is not watched here at all: the program's passes reap it when the reap fd
//! reports it, and hand it back with [`release_remote`] for its pidfd to be
//! closed at the keeper's next wake.
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
            kicked: AtomicBool::new(false),
            forked: AtomicBool::new(false),
            kept: AtomicUsize::new(0),
            claims: [const { AtomicU64::new(0) }; 64],
            dead: [const { AtomicU64::new(0) }; 64],
        }
    }
}

const RX_TAG: u64 = u64::MAX;
/// The message index of a kick (no slot has it).
const KICK: u32 = u32::MAX;
/// Message flags: the child is remote; the message only says a remote child
/// is dead (no fd).
const FLAG_REMOTE: u32 = 1;
const FLAG_DEAD: u32 = 2;
/// Fds the keeper's table needs besides pidfds, with a margin.
const OWN_FDS: usize = 8;

/// This process is the child of a `fork()` (and has not exec'd): starting a
/// thread here is not async-signal-safe (an allocator lock another thread of
/// the parent held at the fork stays held, as ASan's does), so no keeper is
/// started and children are watched in the shared table. On the page of hot
/// words, which the child writes anyway.
static FORKED: &AtomicBool = &super::HOT.keeper.forked;

/// Starts the keeper unless it runs. Gate held, `st` ready. False when it
/// cannot be started (children are then watched in the shared table).
pub(super) fn ready(st: &State) -> bool {
    TX.load(SeqCst) >= 0 || (!FORKED.load(SeqCst) && start(st.efd).is_ok())
}

/// In zdaemonize's daemon, once set up: it is a process of its own now, free
/// to start threads, as any daemon is.
pub(crate) fn allow_in_daemon() {
    FORKED.store(false, SeqCst);
}

/// Whether the keeper's fd table has room for one more pidfd.
fn has_room() -> bool {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
    (KEPT.load(SeqCst) + OWN_FDS) as u64 <= limit
}

/// Hands a new child's pidfd to the keeper and closes it here. Gate held;
/// the slot `idx` (of generation `generation`) is live. With `remote`, the
/// keeper only holds the pidfd (see [`release_remote`]). False when it could
/// not be sent (the caller keeps the pidfd).
pub(super) fn give(idx: u32, generation: u32, pid: pid_t, pidfd: RawFd, remote: bool) -> bool {
    let tx = TX.load(SeqCst);
    if tx < 0 || !has_room() {
        return false;
    }
    let message = encode(idx, generation, pid, if remote { FLAG_REMOTE } else { 0 });
    // Counted before the keeper can see it (it uncounts once done).
    KEPT.fetch_add(1, SeqCst);
    loop {
        match sys::send_message(tx, &message, pidfd) {
            Ok(()) => break,
            // The keeper drains the socket even while it waits for the gate.
            Err(libc::EAGAIN) => wait_writable(tx),
            Err(_) => {
                KEPT.fetch_sub(1, SeqCst);
                return false;
            }
        }
    }
    sys::close(pidfd);
    true
}

/// Asks the keeper to reap the kept children that have exited and then to
/// have a pass run again. Async-signal-safe.
pub(super) fn kick() {
    if !KICKED.swap(true, SeqCst) {
        let _ = sys::send_message(TX.load(SeqCst), &encode(KICK, 0, 0, 0), -1);
    }
}

/// A remote child was reaped (or lost): the keeper closes its pidfd when it
/// next wakes, or at once when no cell is free. Async-signal-safe. Gate held.
pub(super) fn release_remote(idx: u32, generation: u32) {
    let id = identity(idx, generation);
    if !DEAD.iter().any(|cell| cell.compare_exchange(0, id, SeqCst, SeqCst).is_ok()) {
        // Lost only if the socket is full too: a pidfd then stays open in the
        // keeper's private table, which no fork copies.
        let _ = sys::send_message(TX.load(SeqCst), &encode(idx, generation, 0, FLAG_DEAD), -1);
    }
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

/// In a forked child: the keeper is the parent's; the next child made here
/// starts a keeper of its own. Post-fork code (async-signal-safe).
pub(super) fn forget_in_child() {
    FORKED.store(true, SeqCst);
    sys::close(TX.swap(-1, SeqCst));
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
/// end and the eventfd (set by [`start`], under the gate).
static START_FDS: [AtomicI32; 2] = [const { AtomicI32::new(-1) }; 2];
/// How the keeper's start went: [`PENDING`], then 0 or the errno it failed with.
static STARTED: AtomicU32 = AtomicU32::new(PENDING);
const PENDING: u32 = u32::MAX;

/// Starts the keeper (a bare thread where credentials are fixed, else a
/// pthread) and waits until it has its private fd table.
fn start(efd: RawFd) -> io::Result<()> {
    let (tx, rx) = sys::stream_socketpair()?;
    START_FDS[0].store(rx, SeqCst);
    START_FDS[1].store(efd, SeqCst);
    STARTED.store(PENDING, SeqCst);
    let spawned = bare::spawn(keeper_on_bare_thread)
        || std::thread::Builder::new()
            .name("zreap-keeper".into())
            .spawn(|| {
                sys::block_all_signals_in_this_thread();
                keeper_main();
            })
            .is_ok();
    let mut outcome = if spawned { PENDING } else { libc::EAGAIN as u32 };
    while outcome == PENDING {
        sys::futex_wait(&STARTED, PENDING, None);
        outcome = STARTED.load(SeqCst);
    }
    // The keeper has its own copy of the receiving end now (or failed).
    sys::close(rx);
    if outcome == 0 {
        TX.store(tx, SeqCst);
        Ok(())
    } else {
        sys::close(tx);
        Err(io::Error::from_raw_os_error(outcome as c_int))
    }
}

/// The keeper on a bare thread ([`sys::bare`]). Returns only if it could
/// not start.
extern "C" fn keeper_on_bare_thread(_: *mut c_void) -> c_int {
    keeper_main();
    0
}

/// Sets up the keeper's private table, says how that went, and serves for
/// good. On the keeper's thread, by the bare thread's rules.
fn keeper_main() {
    let (rx, efd) = (START_FDS[0].load(SeqCst), START_FDS[1].load(SeqCst));
    let outcome = match Keeper::new(rx, efd) {
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

/// A kept child as the keeper knows it.
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

/// What the keeper holds for a slot's remote child: its pidfd, none (-1), or
/// [`DEAD_EARLY`]: released before its pidfd arrived here.
#[derive(Clone, Copy)]
struct Remote {
    generation: u32,
    pidfd: RawFd,
}

const DEAD_EARLY: RawFd = -2;

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
    efd: RawFd,
    epfd: RawFd,
    /// The child whose pidfd has each fd number here.
    by_fd: MappedVec<Option<Kept>>,
    /// Remote children's pidfds, by slot.
    remote: MappedVec<Remote>,
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
    /// receiving end and the eventfd (under the same numbers).
    fn new(rx: RawFd, efd: RawFd) -> Result<Keeper, c_int> {
        sys::private_fd_table([rx, efd])?;
        let epfd = sys::epoll_create()?;
        let mut keeper = Keeper {
            rx,
            efd,
            epfd,
            by_fd: MappedVec::new(),
            remote: MappedVec::new(),
            stalled: MappedVec::new(),
            lost: MappedVec::new(),
        };
        // Room for a batch of lost children, which need it most when memory is short.
        let _ = keeper.lost.try_reserve(Self::BATCH);
        sys::epoll_add(epfd, rx, libc::EPOLLIN as u32, RX_TAG)?;
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
                if data == RX_TAG {
                    self.drain();
                    self.close_dead();
                    continue;
                }
                let Some(kept) = self.by_fd.get_mut(data as usize).and_then(Option::take) else { continue };
                // A child a wait has claimed is that wait's to reap: no gate
                // is needed to let it go.
                if unclaim(kept.idx, kept.generation) {
                    close_kept(kept.pidfd);
                } else {
                    ready[n_ready] = kept;
                    n_ready += 1;
                }
            }
            let work = n_ready > 0 || !self.stalled.is_empty() || !self.lost.is_empty();
            if work || KICKED.load(SeqCst) {
                self.reap_and_record(&ready[..n_ready]);
            }
        }
    }

    /// Closes the pidfds of the remote children the program has released.
    fn close_dead(&mut self) {
        for cell in DEAD {
            let id = cell.swap(0, SeqCst);
            if id != 0 {
                self.close_remote(id as u32, (id >> 32) as u32);
            }
        }
    }

    /// Remote child `idx` of `generation` was released: closes its pidfd,
    /// or notes that it is dead for when the pidfd arrives.
    fn close_remote(&mut self, idx: u32, generation: u32) {
        // Without room the pidfd stays open in this table when it comes,
        // which no fork copies.
        if self.remote.grow_to(idx as usize + 1, Remote { generation: 0, pidfd: -1 }).is_err() {
            return;
        }
        let held = &mut self.remote[idx as usize];
        if held.generation == generation {
            if held.pidfd >= 0 {
                close_kept(held.pidfd);
                held.pidfd = -1;
            }
        } else if newer(generation, held.generation) {
            // An older child's pidfd still here was released too (its slot
            // was reused), whether or not its note was read yet.
            if held.pidfd >= 0 {
                close_kept(held.pidfd);
            }
            *held = Remote { generation, pidfd: DEAD_EARLY };
        }
        // Else a note older than what is held (the cells are read in no
        // particular order): that child's pidfd is gone already.
    }

    /// Holds remote child `idx`'s pidfd until the program releases it.
    fn hold_remote(&mut self, idx: u32, generation: u32, pid: pid_t, pidfd: RawFd) {
        if self.remote.grow_to(idx as usize + 1, Remote { generation: 0, pidfd: -1 }).is_err() {
            sys::close(pidfd);
            self.lose(Lost { idx, generation, pid, remote: true });
            return;
        }
        let held = &mut self.remote[idx as usize];
        if held.generation == generation && held.pidfd == DEAD_EARLY {
            held.pidfd = -1;
            close_kept(pidfd);
        } else if newer(held.generation, generation) {
            // A later child of the slot is here already: this one is gone.
            close_kept(pidfd);
        } else {
            // An older child's pidfd still here was released (its slot was
            // reused) and its note not read yet.
            if held.pidfd >= 0 {
                close_kept(held.pidfd);
            }
            *held = Remote { generation, pidfd };
        }
    }

    /// Hands a child back to the passes at the next reap, as one without a
    /// pidfd. Without room (out of memory with a batch already waiting) it is
    /// dropped: a wait for it then waits until memory allows again.
    fn lose(&mut self, lost: Lost) {
        let _ = self.lost.try_push(lost);
    }

    /// Takes every message waiting on the socket: new children to watch.
    fn drain(&mut self) {
        loop {
            match sys::recv_message(self.rx) {
                Received::Message(message, fd) => {
                    let (idx, generation, pid, flags) = decode(&message);
                    let remote = flags & FLAG_REMOTE != 0;
                    if idx == KICK {
                        continue;
                    }
                    if flags & FLAG_DEAD != 0 {
                        self.close_remote(idx, generation);
                        continue;
                    }
                    if remote && fd >= 0 {
                        self.hold_remote(idx, generation, pid, fd);
                        continue;
                    }
                    let at = fd as usize;
                    // One-shot: a registration outlives the close of our fd
                    // while a vfork child of another thread still has a copy
                    // of the pidfd, and must not report it again.
                    let watched = fd >= 0
                        && self.by_fd.grow_to(at + 1, None).is_ok()
                        && sys::epoll_add(self.epfd, fd, (libc::EPOLLIN | libc::EPOLLONESHOT) as u32, at as u64)
                            .is_ok();
                    if !watched {
                        sys::close(fd);
                        self.lose(Lost { idx, generation, pid, remote });
                        continue;
                    }
                    self.by_fd[at] = Some(Kept { idx, generation, pidfd: fd });
                }
                Received::Empty | Received::Closed => return,
            }
        }
    }

    /// Reaps the children whose pidfd turned readable and the stalled ones
    /// that have ended, recording each under the gate in the same step (so a
    /// child is always either in the kernel or in the table), then lets the
    /// program's threads know.
    fn reap_and_record(&mut self, ready: &[Kept]) {
        // Draining while waiting: a thread holding the gate may be sending.
        while !REAPER.try_acquire_raw() {
            self.drain();
            bare::sched_yield();
        }
        // SAFETY: the gate is held until release_leaving_deferred below.
        let st = unsafe { REAPER.value_mut() };
        let before = st.table.next_seq;
        for &kept in ready {
            if !kept.is_in(st) || st.table.slot(kept.idx).claimed {
                // Claimed after the check in `run`, or gone.
                unclaim(kept.idx, kept.generation);
                close_kept(kept.pidfd);
                continue;
            }
            let found = sys::waitid(libc::P_PIDFD, kept.pidfd as libc::id_t, libc::WNOHANG | libc::__WALL);
            match found {
                // Without room to wait for it, it is recorded as gone.
                Ok(Waited::NotYet) if self.stalled.try_push(kept).is_ok() => {}
                _ => self.finish(st, kept, found),
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
                KEPT.fetch_sub(1, SeqCst);
                if lost.remote {
                    // Its registration in the reap fd went with the pidfd.
                    st.table.remote_armed -= 1;
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
        // SAFETY: taken above by this thread.
        let pending = unsafe { REAPER.release_leaving_deferred() };
        // After the release, so that a waiter woken here finds the gate free.
        if signal_fd {
            super::events::signal(self.efd);
        }
        if recorded {
            watcher::wake();
        }
        if handler && (pending || kicked) {
            // A pass is due and must not run here: zreap's handler runs it.
            // (Without a handler, passes run in the program's own calls.)
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
        close_kept(kept.pidfd);
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
