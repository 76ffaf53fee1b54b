//! The reaper: which children are in scope, who reaps them, and how each exit
//! is delivered exactly once, to the right waiter.
//!
//! All state lives behind one [`Gate`]. The SIGCHLD handler only *tries* the
//! gate; when another thread holds it, the holder runs the pass for it. Memory
//! the handler writes (slots, the untracked buffer) is allocated in ordinary
//! context before the handler can see it, and the handler never allocates.
//!
//! A pid is no identity once reaped: the kernel may hand it to the next child
//! at once. So:
//! - a tracked child (made by `spawn`/`fork`) is created and registered under
//!   the gate ([`Creation`]), so no pass can reap it before it has a slot;
//! - it is reaped through its pidfd (watched in an epoll set, O(1) per exit in
//!   both scopes); a child without a pidfd (old kernel, fd limit) is reaped by
//!   pid only after its start time matches the one recorded at creation;
//! - slots of one pid form a chain in creation order, so a wait for that pid
//!   gets the exits in the order the processes were created, and a wait for a
//!   tracked child is answered from tracked slots only, never from the buffer
//!   of untracked exits;
//! - in the all-children scope a pass first *looks* at an exited child
//!   (WNOWAIT) and reaps it through the slot that owns it, if any.

use crate::gate::Gate;
use crate::handler;
use crate::stats::{Counters, COUNTERS};
use crate::sys::{self, Waited};
use libc::{c_int, pid_t};
use nix::errno::Errno;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering::SeqCst};

/// At least this many exits of untracked children wait for delivery; past it
/// the oldest is dropped and counted in `Stats::dropped`.
pub const UNTRACKED_CAPACITY: usize = 4096;

/// Flags for [`install`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InstallFlags(u32);

impl InstallFlags {
    /// Reap only children made by `spawn`/`fork` (C: `ZREAP_OWN`).
    pub const OWN: InstallFlags = InstallFlags(0x1);
    /// Become a child subreaper: orphaned descendants come back and are reaped
    /// (C: `ZREAP_SUBREAPER`).
    pub const SUBREAPER: InstallFlags = InstallFlags(0x2);
    /// Install no SIGCHLD handler; reap with `reap_all` when `reap_fd` is
    /// readable (C: `ZREAP_NO_HANDLER`).
    pub const NO_HANDLER: InstallFlags = InstallFlags(0x4);
    const ALL: u32 = 0x7;

    /// No flags: reap every child with a SIGCHLD handler.
    pub const fn empty() -> Self {
        InstallFlags(0)
    }

    /// Flags from C bits; `EINVAL` for unknown bits.
    pub fn from_bits(bits: u32) -> Result<Self, Errno> {
        if bits & !Self::ALL != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(InstallFlags(bits))
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn contains(self, other: InstallFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for InstallFlags {
    type Output = InstallFlags;
    fn bitor(self, rhs: InstallFlags) -> InstallFlags {
        InstallFlags(self.0 | rhs.0)
    }
}

/// One child's exit: its pid and `waitpid`-style status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: pid_t,
    pub status: c_int,
}

impl Exit {
    /// The status decoded by nix.
    pub fn wait_status(&self) -> nix::sys::wait::WaitStatus {
        nix::sys::wait::WaitStatus::from_raw(nix::unistd::Pid::from_raw(self.pid), self.status)
            .unwrap_or(nix::sys::wait::WaitStatus::StillAlive)
    }
}

const NIL: u32 = u32::MAX;
const EVENTFD_TAG: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Live,
    Exited,
    /// Reaped by someone else (a foreign waitpid, SIGCHLD set to SIG_IGN):
    /// the status is gone.
    Lost,
}

/// A tracked child.
#[derive(Clone, Copy)]
struct Slot {
    pid: pid_t,
    pidfd: RawFd,
    /// For a child without a pidfd: its start time when it was registered
    /// (0: unknown), checked before it is reaped by pid.
    start_time: u64,
    state: SlotState,
    status: c_int,
    seq: u64,
    /// The done list (exits not yet delivered, oldest first).
    prev: u32,
    next: u32,
    /// The next slot made later for the same pid (see `State::by_pid`).
    newer: u32,
    /// The library's own child (zdaemonize's intermediate): never delivered,
    /// counted or waited for by anyone but [`collect_private`].
    private: bool,
}

impl Slot {
    const FREE: Slot = Slot {
        pid: 0,
        pidfd: -1,
        start_time: 0,
        state: SlotState::Free,
        status: 0,
        seq: 0,
        prev: NIL,
        next: NIL,
        newer: NIL,
        private: false,
    };
}

#[derive(Clone, Copy)]
struct Record {
    exit: Exit,
    seq: u64,
}

/// Pids are small, distinct integers: the identity is a fine hash.
#[derive(Default)]
pub(crate) struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_i32(&mut self, n: i32) {
        self.0 = n as u32 as u64;
    }
}

struct Installed {
    flags: InstallFlags,
    /// The disposition to restore; None with NO_HANDLER.
    old_action: Option<libc::sigaction>,
}

/// What checking one tracked child found.
enum Check {
    /// It was reaped now and its exit recorded.
    Reaped,
    /// It has not exited (or, without a pidfd, not been told apart yet).
    Running,
    /// Someone else reaped it: recorded as lost.
    Gone,
}

pub(crate) struct State {
    ready: bool,
    installed: Option<Installed>,
    /// zreap_fd() was asked for: keep it readable for every child in scope.
    fd_wanted: bool,
    epfd: RawFd,
    efd: RawFd,
    /// An fd kept open so that the start time of a child without a pidfd can
    /// be read even when the fd table is full (see [`State::start_time`]).
    spare_fd: RawFd,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The oldest undelivered slot of each pid; later ones follow `Slot::newer`.
    by_pid: HashMap<pid_t, u32, BuildHasherDefault<PidHasher>>,
    /// Tracked children without a pidfd.
    fallback: Vec<u32>,
    /// Tracked children not yet reaped.
    live: usize,
    done_head: u32,
    done_tail: u32,
    untracked: VecDeque<Record>,
    next_seq: u64,
}

pub(crate) static REAPER: Gate<State> = Gate::new(State {
    ready: false,
    installed: None,
    fd_wanted: false,
    epfd: -1,
    efd: -1,
    spare_fd: -1,
    slots: Vec::new(),
    free: Vec::new(),
    by_pid: HashMap::with_hasher(BuildHasherDefault::new()),
    fallback: Vec::new(),
    live: 0,
    done_head: NIL,
    done_tail: NIL,
    untracked: VecDeque::new(),
    next_seq: 0,
});

/// Takes the gate in ordinary context; a pass runs before it is released if
/// the handler asked for one meanwhile.
fn lock() -> crate::gate::GateGuard<'static, State> {
    register_fork_handlers();
    REAPER.lock(pass)
}

static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);

/// Registers the fork handlers once, before the gate is first taken: never
/// under the gate, because a concurrent fork() holds glibc's atfork lock
/// while its prepare handler waits for the gate.
fn register_fork_handlers() {
    if !FORK_HANDLERS.load(SeqCst) && !FORK_HANDLERS.swap(true, SeqCst) {
        // SAFETY: the three handlers are extern "C" functions with no arguments.
        let rc = unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child)) };
        if rc != 0 {
            FORK_HANDLERS.store(false, SeqCst);
        }
    }
}

/// Called by the SIGCHLD handler. Async-signal-safe.
pub(crate) fn pass_from_signal() {
    REAPER.run_or_defer(pass);
}

impl State {
    fn scope_own(&self) -> bool {
        self.installed.as_ref().is_some_and(|i| i.flags.contains(InstallFlags::OWN))
    }

    fn handler_active(&self) -> bool {
        self.installed.as_ref().is_some_and(|i| i.old_action.is_some())
    }

    /// Creates the eventfd, the epoll set, the spare fd and the untracked
    /// buffer. Ordinary context only.
    fn ensure_ready(&mut self) -> Result<(), Errno> {
        if self.ready {
            return Ok(());
        }
        let (epfd, efd) = new_event_fds()?;
        self.epfd = epfd;
        self.efd = efd;
        self.spare_fd = sys::dup_cloexec(efd).unwrap_or(-1);
        self.untracked.reserve_exact(UNTRACKED_CAPACITY);
        self.ready = true;
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The start time of `pid`, read through the spare fd's place in the fd
    /// table when the table is full. Async-signal-safe.
    fn start_time(&mut self, pid: pid_t) -> Option<u64> {
        if let Some(t) = sys::proc_start_time(pid) {
            return Some(t);
        }
        if self.spare_fd < 0 || sys::errno() != libc::EMFILE {
            return None;
        }
        sys::close(self.spare_fd);
        let t = sys::proc_start_time(pid);
        self.spare_fd = sys::dup_cloexec(self.efd).unwrap_or(-1);
        t
    }

    fn push_done(&mut self, idx: u32) {
        let tail = self.done_tail;
        self.slots[idx as usize].prev = tail;
        self.slots[idx as usize].next = NIL;
        if tail == NIL {
            self.done_head = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        self.done_tail = idx;
    }

    fn unlink_done(&mut self, idx: u32) {
        let Slot { prev, next, .. } = self.slots[idx as usize];
        if prev == NIL {
            self.done_head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.done_tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    /// Appends a new slot to its pid's chain (creation order).
    fn link_pid(&mut self, idx: u32) {
        let pid = self.slots[idx as usize].pid;
        match self.by_pid.get(&pid) {
            None => {
                self.by_pid.insert(pid, idx);
            }
            Some(&head) => {
                let mut cur = head;
                while self.slots[cur as usize].newer != NIL {
                    cur = self.slots[cur as usize].newer;
                }
                self.slots[cur as usize].newer = idx;
            }
        }
    }

    /// Removes a slot from its pid's chain.
    fn unlink_pid(&mut self, idx: u32) {
        let Slot { pid, newer, .. } = self.slots[idx as usize];
        let Some(&head) = self.by_pid.get(&pid) else { return };
        if head == idx {
            if newer == NIL {
                self.by_pid.remove(&pid);
            } else {
                self.by_pid.insert(pid, newer);
            }
            return;
        }
        let mut cur = head;
        while self.slots[cur as usize].newer != NIL {
            if self.slots[cur as usize].newer == idx {
                self.slots[cur as usize].newer = newer;
                return;
            }
            cur = self.slots[cur as usize].newer;
        }
    }

    /// The oldest slot of `pid` that is the program's (not the library's own).
    fn first_public(&self, pid: pid_t) -> Option<u32> {
        let mut cur = *self.by_pid.get(&pid)?;
        while cur != NIL {
            if !self.slots[cur as usize].private {
                return Some(cur);
            }
            cur = self.slots[cur as usize].newer;
        }
        None
    }

    /// Stops watching a slot's pidfd and closes it. Async-signal-safe.
    fn drop_pidfd(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if slot.pidfd >= 0 {
            // SAFETY: epfd and pidfd are fds the library owns; a NULL event is allowed for DEL.
            unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, slot.pidfd, std::ptr::null_mut()) };
            sys::close(slot.pidfd);
            slot.pidfd = -1;
        }
    }

    /// Records the end of a tracked child: `Some(status)` when reaped here,
    /// None when someone else reaped it. Async-signal-safe (no allocation).
    fn finish_tracked(&mut self, idx: u32, status: Option<c_int>) {
        if self.slots[idx as usize].pidfd < 0 {
            if let Some(pos) = self.fallback.iter().position(|&i| i == idx) {
                self.fallback.swap_remove(pos);
            }
        }
        self.drop_pidfd(idx);
        let seq = self.next_seq();
        let slot = &mut self.slots[idx as usize];
        slot.state = if status.is_some() { SlotState::Exited } else { SlotState::Lost };
        slot.status = status.unwrap_or(0);
        slot.seq = seq;
        if status.is_some() {
            Counters::add(&COUNTERS.reaped, 1);
        }
        if !slot.private {
            self.live -= 1;
            self.push_done(idx);
        }
    }

    /// Records an exit in the bounded buffer of untracked children.
    /// Async-signal-safe: the buffer's capacity is reserved beforehand.
    fn record_untracked(&mut self, exit: Exit) {
        if self.untracked.len() >= UNTRACKED_CAPACITY {
            self.untracked.pop_front();
            Counters::add(&COUNTERS.dropped, 1);
        }
        let seq = self.next_seq();
        Counters::add(&COUNTERS.reaped, 1);
        self.untracked.push_back(Record { exit, seq });
    }

    /// Reaps the live tracked child in slot `idx` if it has exited, telling it
    /// apart from a later process with the same pid. Async-signal-safe.
    ///
    /// With a pidfd the answer is exact. Without one, the child is reaped by
    /// pid only while its start time is the one recorded at creation; with
    /// `strict`, a running process whose start time differs is also taken as
    /// proof that the child is gone (a /proc read the pass spares itself).
    fn check_slot(&mut self, idx: u32, strict: bool) -> Check {
        let Slot { pid, pidfd, start_time, .. } = self.slots[idx as usize];
        if pidfd >= 0 {
            return match sys::waitid(libc::P_PIDFD, pidfd as libc::id_t, libc::WNOHANG) {
                Ok(Waited::Exited(_, status)) => {
                    self.finish_tracked(idx, Some(status));
                    Check::Reaped
                }
                Ok(Waited::NotYet) => Check::Running,
                Err(_) => {
                    self.finish_tracked(idx, None);
                    Check::Gone
                }
            };
        }
        let same_process = |st: &mut State| start_time == 0 || st.start_time(pid) == Some(start_time);
        match sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG | libc::WNOWAIT) {
            Ok(Waited::Exited(..)) if same_process(self) => {
                match sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG) {
                    Ok(Waited::Exited(_, status)) => {
                        self.finish_tracked(idx, Some(status));
                        Check::Reaped
                    }
                    _ => {
                        self.finish_tracked(idx, None);
                        Check::Gone
                    }
                }
            }
            Ok(Waited::NotYet) if !strict || same_process(self) => Check::Running,
            _ => {
                self.finish_tracked(idx, None);
                Check::Gone
            }
        }
    }

    /// Reaps `pid` if it has exited: through the tracked slots of that pid,
    /// oldest first, and otherwise, with `untracked_too`, as an untracked
    /// child. Returns whether it reaped something. Async-signal-safe.
    fn reap_pid(&mut self, pid: pid_t, untracked_too: bool, strict: bool) -> bool {
        let mut cur = self.by_pid.get(&pid).copied().unwrap_or(NIL);
        while cur != NIL {
            let next = self.slots[cur as usize].newer;
            if self.slots[cur as usize].state == SlotState::Live {
                match self.check_slot(cur, strict) {
                    Check::Reaped => return true,
                    Check::Running => return false,
                    Check::Gone => {}
                }
            }
            cur = next;
        }
        if !untracked_too {
            return false;
        }
        match sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG) {
            Ok(Waited::Exited(pid, status)) => {
                self.record_untracked(Exit { pid, status });
                true
            }
            _ => false,
        }
    }

    fn has_records(&self) -> bool {
        self.done_head != NIL || !self.untracked.is_empty()
    }

    /// Makes the eventfd readable exactly when undelivered exits exist.
    fn sync_eventfd(&self) {
        if self.has_records() {
            sys::eventfd_signal(self.efd);
        } else {
            sys::eventfd_drain(self.efd);
        }
    }

    /// Frees a delivered or lost slot. Ordinary context.
    fn free_slot(&mut self, idx: u32) {
        let Slot { state, private, .. } = self.slots[idx as usize];
        if state == SlotState::Live {
            self.drop_pidfd(idx);
            self.fallback.retain(|&i| i != idx);
        }
        if !private {
            self.unlink_done(idx);
            Counters::sub(&COUNTERS.tracked, 1);
        }
        self.unlink_pid(idx);
        self.slots[idx as usize] = Slot::FREE;
        self.free.push(idx);
    }

    /// Takes the oldest undelivered exit (`pid` -1) or the next one of `pid`.
    /// For a pid that has tracked slots, only they answer, in creation order;
    /// a slot whose child someone else reaped answers `ECHILD` once.
    fn take(&mut self, pid: pid_t) -> Result<Option<Exit>, Errno> {
        let exit = if pid == -1 {
            // Lost slots carry nothing to deliver: free them on the way.
            let tracked = loop {
                let head = self.done_head;
                if head == NIL {
                    break None;
                }
                if self.slots[head as usize].state == SlotState::Lost {
                    self.free_slot(head);
                    continue;
                }
                break Some(head);
            };
            match (tracked, self.untracked.front()) {
                (Some(idx), Some(r)) if r.seq < self.slots[idx as usize].seq => {
                    self.untracked.pop_front().map(|r| r.exit)
                }
                (Some(idx), _) => Some(self.deliver_slot(idx)),
                (None, Some(_)) => self.untracked.pop_front().map(|r| r.exit),
                (None, None) => None,
            }
        } else if let Some(idx) = self.first_public(pid) {
            match self.slots[idx as usize].state {
                SlotState::Exited => Some(self.deliver_slot(idx)),
                SlotState::Lost => {
                    self.free_slot(idx);
                    self.sync_eventfd();
                    return Err(Errno::ECHILD);
                }
                _ => None,
            }
        } else {
            let pos = self.untracked.iter().position(|r| r.exit.pid == pid);
            pos.and_then(|p| self.untracked.remove(p)).map(|r| r.exit)
        };
        if exit.is_some() {
            Counters::add(&COUNTERS.reported, 1);
            self.sync_eventfd();
        }
        Ok(exit)
    }

    /// Frees an exited slot and returns its exit.
    fn deliver_slot(&mut self, idx: u32) -> Exit {
        let slot = self.slots[idx as usize];
        self.free_slot(idx);
        Exit { pid: slot.pid, status: slot.status }
    }

    /// Takes every undelivered exit, oldest first.
    fn take_all(&mut self) -> Vec<Exit> {
        let mut records: Vec<Record> = self.untracked.drain(..).collect();
        while self.done_head != NIL {
            let idx = self.done_head;
            let slot = self.slots[idx as usize];
            if slot.state == SlotState::Exited {
                records.push(Record { exit: Exit { pid: slot.pid, status: slot.status }, seq: slot.seq });
            }
            self.free_slot(idx);
        }
        records.sort_unstable_by_key(|r| r.seq);
        Counters::add(&COUNTERS.reported, records.len() as u64);
        sys::eventfd_drain(self.efd);
        records.into_iter().map(|r| r.exit).collect()
    }

    /// Starts tracking a child made under a [`Creation`]: no pass can have
    /// reaped it yet. Ordinary context, gate held.
    fn track(&mut self, pid: pid_t, pidfd: Option<RawFd>, private: bool) -> u32 {
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(Slot::FREE);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[idx as usize] = Slot { pid, state: SlotState::Live, private, ..Slot::FREE };
        self.link_pid(idx);
        if !private {
            self.live += 1;
            Counters::add(&COUNTERS.tracked, 1);
        }
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: u64::from(idx) };
        let watched = pidfd.filter(|&fd| {
            // SAFETY: epfd and fd are valid fds owned by the library; event is valid.
            let ok = unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut event) } == 0;
            if !ok {
                sys::close(fd);
            }
            ok
        });
        match watched {
            Some(fd) => self.slots[idx as usize].pidfd = fd,
            None => {
                self.slots[idx as usize].start_time = self.start_time(pid).unwrap_or(0);
                self.fallback.push(idx);
                publish_watch_mode(self);
            }
        }
        idx
    }

    /// Makes room for one more slot, so that tracking cannot fail or allocate
    /// after the child exists.
    fn reserve_slot(&mut self) {
        self.slots.reserve(1);
        self.free.reserve(self.slots.len() + 1);
        self.fallback.reserve(1);
        self.by_pid.reserve(1);
    }
}

/// Reaps every exited child in scope and records its exit. Runs under the
/// gate, from the SIGCHLD handler or from ordinary context.
///
/// Async-signal-safe: only waitid, epoll_wait, epoll_ctl, open, read, close
/// and write, and writes to memory reserved beforehand; no allocation, no lock.
fn pass(st: &mut State) {
    sweep(st, false);
}

/// The body of [`pass`]. With `for_caller` (ordinary context, a caller
/// waiting to take the exits), untracked children stay zombies once the
/// buffer is full instead of pushing older exits out: the caller takes the
/// batch and sweeps again.
fn sweep(st: &mut State, for_caller: bool) {
    if !st.ready {
        return;
    }
    let before = st.next_seq;
    reap_watched(st);
    if st.scope_own() {
        let mut i = 0;
        while i < st.fallback.len() {
            match st.check_slot(st.fallback[i], false) {
                Check::Running => i += 1,
                // The slot left the fallback list.
                Check::Reaped | Check::Gone => {}
            }
        }
    } else {
        while !(for_caller && st.untracked.len() >= UNTRACKED_CAPACITY) {
            let Some(pid) = sys::peek_exited_child() else { break };
            if !st.reap_pid(pid, true, false) {
                break;
            }
        }
    }
    if st.next_seq != before {
        sys::eventfd_signal(st.efd);
        WAKE.fetch_add(1, SeqCst);
        sys::futex_wake_all(&WAKE);
    }
}

/// Reaps the tracked children whose pidfds are readable. Async-signal-safe.
fn reap_watched(st: &mut State) {
    const BATCH: usize = 32;
    loop {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        // SAFETY: events has room for BATCH entries; a zero timeout never blocks.
        let n = unsafe { libc::epoll_wait(st.epfd, events.as_mut_ptr(), BATCH as c_int, 0) };
        if n <= 0 {
            return;
        }
        let mut children = 0;
        for event in &events[..n as usize] {
            let data = event.u64;
            if data == EVENTFD_TAG {
                continue;
            }
            children += 1;
            let idx = data as u32;
            let slot = st.slots[idx as usize];
            if slot.state == SlotState::Live && slot.pidfd >= 0 {
                st.check_slot(idx, false);
            }
        }
        if children == 0 || (n as usize) < BATCH {
            return;
        }
    }
}

/// Makes the eventfd and the epoll set (which watches the eventfd and every
/// tracked pidfd); the epoll fd is what `reap_fd` hands out.
fn new_event_fds() -> Result<(RawFd, RawFd), Errno> {
    // SAFETY: plain fd-creating system calls.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: as above.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        let e = Errno::last();
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
        let e = Errno::last();
        sys::close(efd);
        sys::close(epfd);
        return Err(e);
    }
    Ok((epfd, efd))
}

// ---------------------------------------------------------------- creation

thread_local! {
    /// This thread holds the gate across a fork of its own ([`Creation`]):
    /// the fork handlers must neither take nor release it.
    static CREATING: Cell<bool> = const { Cell::new(false) };
}

/// The gate, held from before a tracked child is created until it is
/// registered, so that no pass can reap (and misfile) a child that has no
/// slot yet. Passes the SIGCHLD handler asks for meanwhile run at the end.
pub(crate) struct Creation {
    released: bool,
}

impl Creation {
    /// Takes the gate and prepares what the reaper needs for one more child.
    pub(crate) fn begin() -> Result<Creation, Errno> {
        register_fork_handlers();
        REAPER.acquire_raw();
        CREATING.with(|c| c.set(true));
        let creation = Creation { released: false };
        let st = creation.state();
        st.ensure_ready()?;
        st.reserve_slot();
        Ok(creation)
    }

    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: a live Creation holds the gate, and the reference does not
        // outlive it (every use below is within one method).
        unsafe { REAPER.value_mut() }
    }

    /// Registers the new child (`pidfd` is taken over) and lets the gate go.
    pub(crate) fn track(self, pid: pid_t, pidfd: Option<RawFd>) {
        self.state().track(pid, pidfd, false);
    }

    /// Registers the library's own child (see [`collect_private`]) and lets
    /// the gate go. Returns its ticket.
    pub(crate) fn track_private(self, pid: pid_t, pidfd: Option<RawFd>) -> u32 {
        self.state().track(pid, pidfd, true)
    }

    /// Collects a child that failed before it became the program, so it
    /// leaves no zombie and no record, and lets the gate go.
    pub(crate) fn discard(self, pid: pid_t, pidfd: Option<RawFd>) {
        let _ = match pidfd {
            Some(fd) => sys::waitid(libc::P_PIDFD, fd as libc::id_t, 0),
            None => sys::waitid(libc::P_PID, pid as libc::id_t, 0),
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
            REAPER.release_raw(pass);
            WAKE.fetch_add(1, SeqCst);
            sys::futex_wake_all(&WAKE);
        }
    }
}

// ---------------------------------------------------------------- fork safety

extern "C" fn before_fork() {
    if !CREATING.with(Cell::get) {
        REAPER.acquire_raw();
    }
}

extern "C" fn after_fork_parent() {
    if !CREATING.with(Cell::get) {
        REAPER.release_raw(pass);
        WAKE.fetch_add(1, SeqCst);
        sys::futex_wake_all(&WAKE);
    }
}

/// In the child of fork(): the parent's children are not ours, its threads are
/// gone, and its fds must not be shared. Async-signal-safe: raw system calls and
/// clearing of containers that keep their memory; the gate was taken before
/// the fork, so the state is consistent.
extern "C" fn after_fork_child() {
    CREATING.with(|c| c.set(false));
    // SAFETY: before_fork (or a Creation) took the gate in the parent; the
    // child has one thread.
    let st = unsafe { REAPER.value_mut() };
    for slot in &st.slots {
        sys::close(slot.pidfd);
    }
    st.slots.clear();
    st.free.clear();
    st.by_pid.clear();
    st.fallback.clear();
    st.live = 0;
    st.done_head = NIL;
    st.done_tail = NIL;
    st.untracked.clear();
    if st.ready {
        // Fresh fds under the same numbers, so zreap_fd() stays the same fd.
        match new_event_fds() {
            Ok((epfd, efd)) => {
                let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: EVENTFD_TAG };
                // SAFETY: dup3 atomically replaces the inherited fds with the fresh
                // ones; the epoll set then watches the eventfd under its final number.
                unsafe {
                    libc::dup3(efd, st.efd, libc::O_CLOEXEC);
                    libc::dup3(epfd, st.epfd, libc::O_CLOEXEC);
                    libc::epoll_ctl(st.epfd, libc::EPOLL_CTL_DEL, efd, std::ptr::null_mut());
                    libc::epoll_ctl(st.epfd, libc::EPOLL_CTL_ADD, st.efd, &mut event);
                    libc::fcntl(st.epfd, libc::F_SETFL, libc::O_NONBLOCK);
                }
                sys::close(efd);
                sys::close(epfd);
            }
            Err(_) => {
                sys::close(st.efd);
                sys::close(st.epfd);
                sys::close(st.spare_fd);
                st.spare_fd = -1;
                st.ready = false;
            }
        }
    }
    COUNTERS.reset();
    crate::daemon::forget_ready_in_child();
    WATCHER_STARTED.store(false, SeqCst);
    crate::pdeath::forget_service_in_child();
    REAPER.reset_in_child();
}

// ---------------------------------------------------------------- the watcher

/// Bumped whenever something a waiter may care about changed: a pass reaped a
/// child, the configuration changed, a child was made.
static WAKE: AtomicU32 = AtomicU32::new(0);
static WATCH_MODE: AtomicU8 = AtomicU8::new(WATCH_IDLE);
static WATCHER_STARTED: AtomicBool = AtomicBool::new(false);
const WATCH_IDLE: u8 = 0;
/// No handler runs and every child is in scope: watch with waitid(WNOWAIT).
const WATCH_ALL: u8 = 1;
/// No handler runs, OWN scope, some tracked children have no pidfd: poll them.
const WATCH_FALLBACK: u8 = 2;
/// A handler is installed but SIGCHLD is blocked in every thread, so it can
/// never run: watch with waitid(WNOWAIT) and run the pass in its place.
const WATCH_REAP: u8 = 3;

/// Works out whether `reap_fd` needs the watcher thread to stay readable for
/// every child in scope (or to reap in place of a handler that cannot run),
/// and wakes it. Gate held.
fn publish_watch_mode(st: &State) {
    let mode = if st.handler_active() {
        if HANDLER_BLOCKED.load(SeqCst) {
            WATCH_REAP
        } else {
            WATCH_IDLE
        }
    } else if !st.fd_wanted {
        WATCH_IDLE
    } else if !st.scope_own() {
        WATCH_ALL
    } else if !st.fallback.is_empty() {
        WATCH_FALLBACK
    } else {
        WATCH_IDLE
    };
    WATCH_MODE.store(mode, SeqCst);
    WAKE.fetch_add(1, SeqCst);
    sys::futex_wake_all(&WAKE);
}

/// SIGCHLD was blocked in every thread when the handler was installed.
static HANDLER_BLOCKED: AtomicBool = AtomicBool::new(false);

/// Starts the watcher thread unless it runs already. `EAGAIN` (or the cause)
/// when no thread can be started. Ordinary context.
fn start_watcher() -> Result<(), Errno> {
    if WATCHER_STARTED.swap(true, SeqCst) {
        return Ok(());
    }
    match std::thread::Builder::new().name("zreap-watcher".into()).spawn(watch) {
        Ok(_) => Ok(()),
        Err(e) => {
            WATCHER_STARTED.store(false, SeqCst);
            Err(e.raw_os_error().map_or(Errno::EAGAIN, Errno::from_raw))
        }
    }
}

/// Whether SIGCHLD is blocked in every thread of this process (read from
/// `/proc/self/task/*/status`). False when that cannot be read.
fn sigchld_blocked_everywhere() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return false };
    let bit = 1u64 << (libc::SIGCHLD - 1);
    let mut seen = false;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
        match blocked {
            Some(mask) if mask & bit != 0 => seen = true,
            _ => return false,
        }
    }
    seen
}

/// The watcher thread: makes the reap fd readable for exits no handler sees,
/// and in `WATCH_REAP` mode reaps them. Otherwise it only looks (WNOWAIT).
fn watch() {
    block_all_signals_in_this_thread();
    let efd = lock().efd;
    loop {
        let wake = WAKE.load(SeqCst);
        match WATCH_MODE.load(SeqCst) {
            mode @ (WATCH_ALL | WATCH_REAP) => match sys::waitid(libc::P_ALL, 0, libc::WNOWAIT) {
                Ok(Waited::Exited(pid, _)) => {
                    // Under the gate, and only if still unreaped: a reap_all that
                    // ran meanwhile has drained the fd and must leave it drained.
                    {
                        let mut st = lock();
                        if mode == WATCH_REAP {
                            pass(&mut st);
                        }
                        if matches!(
                            sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG | libc::WNOWAIT),
                            Ok(Waited::Exited(..))
                        ) {
                            sys::eventfd_signal(efd);
                        }
                    }
                    // Wait until someone reaps it before looking again.
                    while WATCH_MODE.load(SeqCst) == mode
                        && matches!(
                            sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG | libc::WNOWAIT),
                            Ok(Waited::Exited(..))
                        )
                    {
                        sys::futex_wait(&WAKE, WAKE.load(SeqCst), Some(100));
                    }
                }
                // No children: fork() wakes us through the fork handlers; a
                // posix_spawn()ed child does not, hence the timeout.
                _ => sys::futex_wait(&WAKE, wake, Some(100)),
            },
            WATCH_FALLBACK => {
                let pids: Vec<pid_t> = {
                    let st = lock();
                    st.fallback.iter().map(|&i| st.slots[i as usize].pid).collect()
                };
                let exited = pids.iter().any(|&pid| {
                    matches!(
                        sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG | libc::WNOWAIT),
                        Ok(Waited::Exited(..))
                    )
                });
                if exited {
                    sys::eventfd_signal(efd);
                }
                sys::futex_wait(&WAKE, wake, Some(50));
            }
            _ => sys::futex_wait(&WAKE, wake, None),
        }
    }
}

/// Internal threads take no signals meant for the host program.
pub(crate) fn block_all_signals_in_this_thread() {
    // SAFETY: set is a valid sigset_t; pthread_sigmask only changes this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

// ---------------------------------------------------------------- the API

/// Sets up reaping for the whole process (C: `zreap_install`).
///
/// Without [`InstallFlags::OWN`], every child is reaped as soon as it exits.
/// Installing again with the same flags succeeds, and puts zreap's SIGCHLD
/// handler back if the program replaced it; with other flags it fails with
/// `EBUSY` until [`uninstall`]. With [`InstallFlags::NO_HANDLER`] a watcher
/// thread is started; when it cannot be, this fails (`EAGAIN`) and installs
/// nothing. If SIGCHLD is blocked in every thread (so no handler could run),
/// the watcher thread reaps in the handler's place.
///
/// ```
/// zreap::install(zreap::InstallFlags::OWN).unwrap();
/// assert_eq!(zreap::install(zreap::InstallFlags::empty()), Err(nix::errno::Errno::EBUSY));
/// zreap::uninstall().unwrap();
/// ```
pub fn install(flags: InstallFlags) -> Result<(), Errno> {
    let mut st = lock();
    st.ensure_ready()?;
    if let Some(current) = &st.installed {
        if current.flags != flags {
            return Err(Errno::EBUSY);
        }
        if current.old_action.is_some() && !handler::is_installed()? {
            let replaced = handler::install()?;
            if let Some(installed) = st.installed.as_mut() {
                installed.old_action = Some(replaced);
            }
        }
        return Ok(());
    }
    let no_handler = flags.contains(InstallFlags::NO_HANDLER);
    let blocked = !no_handler && sigchld_blocked_everywhere();
    if no_handler || blocked {
        start_watcher()?;
    }
    if flags.contains(InstallFlags::SUBREAPER) {
        nix::sys::prctl::set_child_subreaper(true)?;
    }
    let old_action = if no_handler { None } else { Some(handler::install()?) };
    st.fd_wanted |= no_handler;
    HANDLER_BLOCKED.store(blocked, SeqCst);
    st.installed = Some(Installed { flags, old_action });
    publish_watch_mode(&st);
    // Children that exited before the handler existed send no more signals.
    REAPER.request_again();
    Ok(())
}

/// Puts back the SIGCHLD disposition that was there before [`install`]
/// (C: `zreap_uninstall`). Succeeds when nothing is installed. Recorded exits
/// stay deliverable; the subreaper setting stays.
pub fn uninstall() -> Result<(), Errno> {
    let mut st = lock();
    if let Some(Installed { old_action: Some(old), .. }) = &st.installed {
        handler::restore(old)?;
    }
    st.installed = None;
    HANDLER_BLOCKED.store(false, SeqCst);
    publish_watch_mode(&st);
    Ok(())
}

/// Reaps every exited child in scope, then calls `on_exit` once for each exit
/// not yet delivered, oldest first, in ordinary context (C: `zreap_all`).
/// Never blocks. Returns how many exits it reported.
///
/// ```
/// let n = zreap::reap_all(|exit| println!("{} ended: {:#x}", exit.pid, exit.status)).unwrap();
/// assert_eq!(n, 0);
/// ```
pub fn reap_all(mut on_exit: impl FnMut(Exit)) -> Result<usize, Errno> {
    let exits = {
        let mut st = lock();
        st.ensure_ready()?;
        sys::eventfd_drain(st.efd);
        let mut exits = Vec::new();
        loop {
            sweep(&mut st, true);
            let full = st.untracked.len() >= UNTRACKED_CAPACITY;
            exits.extend(st.take_all());
            if !full {
                break exits;
            }
        }
    };
    let n = exits.len();
    exits.into_iter().for_each(&mut on_exit);
    Ok(n)
}

/// `waitpid()` that also finds a child the handler already reaped (C: `zwait`).
///
/// `pid` is a child's pid or -1 for any child in scope. With `nohang`, returns
/// `Ok(None)` when no child in scope has exited yet. `ECHILD` when `pid` is not a
/// child in scope, its exit was already delivered, or (-1) no child in scope is
/// left; `EINVAL` for any other `pid`.
///
/// Pid reuse: exits of one pid are delivered in the order the processes were
/// created; for a tracked child's pid only tracked records answer, so a wait
/// never returns the exit of an older process that had the same pid.
///
/// ```
/// use std::ffi::CString;
/// let sh = CString::new("/bin/sh").unwrap();
/// let args = [sh.clone(), CString::new("-c").unwrap(), CString::new("exit 3").unwrap()];
/// let pid = zreap::spawn(&sh, &args, None, &zreap::SpawnOptions::default()).unwrap();
/// let exit = zreap::wait(pid, false).unwrap().unwrap();
/// assert_eq!((exit.pid, libc::WEXITSTATUS(exit.status)), (pid, 3));
/// ```
pub fn wait(pid: pid_t, nohang: bool) -> Result<Option<Exit>, Errno> {
    if pid == 0 || pid < -1 {
        return Err(Errno::EINVAL);
    }
    loop {
        let blocker = {
            let mut st = lock();
            st.ensure_ready()?;
            if pid > 0 {
                // This child alone: without a reaper, waiting for one child
                // must not sweep the others.
                let untracked_too = !st.scope_own();
                st.reap_pid(pid, untracked_too, true);
            } else {
                pass(&mut st);
            }
            if let Some(exit) = st.take(pid)? {
                return Ok(Some(exit));
            }
            waitable(&mut st, pid)?
        };
        if nohang {
            return Ok(None);
        }
        blocker.block();
    }
}

/// How `wait` sleeps until the child it waits for may have changed.
enum Blocker {
    /// A dup of the child's pidfd (closed after use) or its pid.
    Child { pidfd: Option<RawFd>, pid: pid_t },
    /// Any child in scope: the reap fd.
    Any { epfd: RawFd },
}

impl Blocker {
    fn block(&self) {
        match *self {
            Blocker::Child { pidfd: Some(fd), .. } => {
                let _ = sys::waitid(libc::P_PIDFD, fd as libc::id_t, libc::WNOWAIT);
            }
            Blocker::Child { pidfd: None, pid } => {
                let _ = sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOWAIT);
            }
            Blocker::Any { epfd } => {
                let mut pfd = libc::pollfd { fd: epfd, events: libc::POLLIN, revents: 0 };
                // SAFETY: pfd is one valid pollfd. The timeout is a backstop in
                // case no watcher thread could be started.
                unsafe { libc::poll(&mut pfd, 1, 1000) };
            }
        }
    }
}

impl Drop for Blocker {
    fn drop(&mut self) {
        if let Blocker::Child { pidfd: Some(fd), .. } = *self {
            sys::close(fd);
        }
    }
}

/// Whether `pid` (or -1) still names a child in scope that may exit, and how
/// to wait for it. Gate held, nothing deliverable for `pid`, and `pid`'s
/// tracked slots just checked by `reap_pid`.
fn waitable(st: &mut State, pid: pid_t) -> Result<Blocker, Errno> {
    if pid == -1 {
        let any_left = if st.scope_own() {
            st.live > 0
        } else {
            sys::waitid(libc::P_ALL, 0, libc::WNOHANG | libc::WNOWAIT).is_ok()
        };
        if !any_left {
            return Err(Errno::ECHILD);
        }
        if !st.handler_active() && !st.fd_wanted {
            st.fd_wanted = true;
            publish_watch_mode(st);
            // Without the watcher, the poll's timeout is the backstop.
            let _ = start_watcher();
        }
        return Ok(Blocker::Any { epfd: st.epfd });
    }
    if let Some(idx) = st.first_public(pid) {
        let slot = st.slots[idx as usize];
        let pidfd = (slot.pidfd >= 0).then(|| sys::dup_cloexec(slot.pidfd).ok()).flatten();
        return Ok(Blocker::Child { pidfd, pid });
    }
    if st.scope_own() {
        return Err(Errno::ECHILD);
    }
    // An untracked child in the ALL scope: is it ours and still running?
    match sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG | libc::WNOWAIT) {
        Ok(_) => Ok(Blocker::Child { pidfd: None, pid }),
        Err(e) => Err(e),
    }
}

/// A non-blocking, close-on-exec fd that is readable while an exit in scope
/// waits for [`reap_all`] (C: `zreap_fd`). The same fd on every call; it stays
/// owned by the library. When no SIGCHLD handler is installed, a watcher thread
/// keeps it readable for every child in scope; `EAGAIN` if it cannot start.
///
/// ```
/// let fd = zreap::reap_fd().unwrap();
/// assert_eq!(fd, zreap::reap_fd().unwrap());
/// ```
pub fn reap_fd() -> Result<RawFd, Errno> {
    let mut st = lock();
    st.ensure_ready()?;
    if !st.fd_wanted {
        if !st.handler_active() {
            start_watcher()?;
        }
        st.fd_wanted = true;
        publish_watch_mode(&st);
    }
    Ok(st.epfd)
}

/// Waits for a child registered with [`Creation::track_private`] to end and
/// collects it, whoever reaped it. Reaps nothing else.
pub(crate) fn collect_private(ticket: u32, pid: pid_t) {
    let pidfd = {
        let st = lock();
        let slot = st.slots[ticket as usize];
        (slot.pidfd >= 0).then(|| sys::dup_cloexec(slot.pidfd).ok()).flatten()
    };
    let _ = match pidfd {
        Some(fd) => sys::waitid(libc::P_PIDFD, fd as libc::id_t, 0),
        None => sys::waitid(libc::P_PID, pid as libc::id_t, 0),
    };
    if let Some(fd) = pidfd {
        sys::close(fd);
    }
    lock().free_slot(ticket);
}

/// Collects a failed daemon that a subreaper caller adopted, so it leaves no
/// zombie. If a pass in the ALL scope reaped it first, its record is removed:
/// it is the newest record of that pid, since the daemon reported its pid
/// while it was alive.
pub(crate) fn collect_adopted(pid: pid_t) {
    let mut st = lock();
    if let Some(pos) = st.untracked.iter().rposition(|r| r.exit.pid == pid) {
        st.untracked.remove(pos);
        Counters::sub(&COUNTERS.reaped, 1);
        st.sync_eventfd();
    } else {
        let _ = sys::waitid(libc::P_PID, pid as libc::id_t, 0);
    }
}

/// In a daemon that has just closed every fd: forget the library's fds (they
/// are gone) so the next call makes new ones. Single-threaded fork child only;
/// async-signal-safe there (the gate is free, nothing is allocated).
pub(crate) fn forget_fds() {
    let mut st = lock();
    st.ready = false;
    st.epfd = -1;
    st.efd = -1;
    st.spare_fd = -1;
}
