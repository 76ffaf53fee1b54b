//! The exit table: tracked children's slots, their per-pid chains, the list of
//! exits not yet delivered, and the bounded buffer of untracked exits. Data
//! only (a slot's pidfd is handed back to the caller to close), so it is
//! unit-tested without processes; the slots and the pid map live in mappings
//! a fork leaves out of the child ([`MappedVec`]), so that thousands of tracked children do
//! not slow every fork of the process.
//!
//! Signal context: every method the pass calls (`finish`, `record_untracked`,
//! the lookups) is async-signal-safe: it writes only memory reserved in
//! ordinary context beforehand ([`Table::reserve_slot`], the buffer's
//! capacity) and never allocates.

use super::pidmap::PidMap;
use super::Exit;
use super::COUNTERS;
use crate::sys::MappedVec;
use libc::{c_int, pid_t};
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// This many exits of untracked children wait for delivery; past it the
/// oldest is dropped and counted in `Stats::dropped`. Enough for a storm of
/// every child a process can have at once on most systems (the default
/// `pid_max` is 32,768): 1 MiB of address space, reserved once, whose pages
/// are touched only as far as exits are waiting.
pub const UNTRACKED_CAPACITY: usize = 65536;

pub(super) const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotState {
    Free,
    Live,
    Exited,
    /// Reaped by someone else (a foreign waitpid, SIGCHLD set to SIG_IGN):
    /// the status is gone.
    Lost,
}

/// A tracked child.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub pid: pid_t,
    /// Its pidfd in the shared fd table, watched by the reap fd (-1: none).
    pub pidfd: RawFd,
    /// Its pidfd is held by the keeper thread, which reaps it unless
    /// `claimed`.
    pub kept: bool,
    /// A kept child that a blocking wait reaps itself (see `wait`): no pass
    /// and not the keeper touch it.
    pub claimed: bool,
    /// A kept child that the passes reap, by pid, when the reap fd reports
    /// its pidfd readable; the keeper only holds the pidfd (see
    /// `events::watch_remote`).
    pub remote: bool,
    /// A remote slot whose registration in the reap fd has not reported the
    /// child's exit yet (counted in [`Table::remote_armed`], or for a parked
    /// one in [`Table::parked_armed`]).
    pub armed: bool,
    /// A remote child made under zreap's handler, whose passes read
    /// its registration at each SIGCHLD (see `State::track`).
    pub parked: bool,
    /// Bumped each time the slot is given to a new child: with the index, the
    /// identity the keeper knows a child by.
    pub generation: u32,
    /// For a child without a pidfd: its start time when it was registered
    /// (0: unknown), checked before it is reaped by pid.
    pub start_time: u64,
    pub state: SlotState,
    pub status: c_int,
    seq: u64,
    /// The done list (exits not yet delivered, oldest first); in a free
    /// slot, `next` is the next free slot.
    prev: u32,
    next: u32,
    /// The next slot made later for the same pid.
    newer: u32,
    /// The library's own child (zdaemonize's intermediate): never delivered,
    /// counted or waited for by anyone but its maker.
    pub private: bool,
}

impl Slot {
    const FREE: Slot = Slot {
        pid: 0,
        pidfd: -1,
        kept: false,
        claimed: false,
        remote: false,
        armed: false,
        parked: false,
        generation: 0,
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

#[derive(Debug, Clone, Copy)]
struct Record {
    exit: Exit,
    seq: u64,
}

/// What [`Table::take`] found for one pid.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Taken {
    Exit(Exit),
    /// The oldest tracked child of that pid was reaped by someone else.
    Lost,
    Nothing,
}

pub(super) struct Table {
    /// Left out of a fork's child, except while a pass in the scope of the
    /// library's own children reads slots (see [`Table::share_slots`]).
    slots: MappedVec<Slot>,
    /// The most recently freed slot; the others follow `Slot::next`. Kept in
    /// the slots themselves, so making and freeing a child writes no other
    /// memory (after a fork, each page the parent writes costs it a copy).
    free_head: u32,
    /// The oldest slot of each pid still in the table; later ones follow `Slot::newer`.
    by_pid: PidMap,
    /// Tracked children without a pidfd.
    pub fallback: Vec<u32>,
    /// Tracked children of the program not yet reaped.
    pub live: usize,
    /// Live slots with a pidfd in the shared table (see [`Slot::pidfd`]).
    pub watched: usize,
    /// Live remote slots (see [`Slot::remote`]).
    pub remote: usize,
    /// Live remote slots whose registration in the reap fd has not reported
    /// yet: while there are any, the program's calls look at the reap fd.
    pub remote_armed: usize,
    /// Live parked slots whose registration in the reap fd has not reported
    /// their exit yet: the passes read the reap fd's set while there are any.
    pub parked_armed: usize,
    /// Of those, the ones a blocking wait has claimed ([`Table::claim`]): the
    /// wait reads its child's registration itself, so a SIGCHLD for them
    /// alone needs no pass.
    pub parked_claimed: usize,
    done_head: u32,
    done_tail: u32,
    untracked: VecDeque<Record>,
    /// Bumped on every recorded exit: the order of records.
    pub next_seq: u64,
}

impl Table {
    pub const fn new() -> Table {
        Table {
            slots: MappedVec::new(),
            free_head: NIL,
            by_pid: PidMap::new(),
            fallback: Vec::new(),
            live: 0,
            watched: 0,
            remote: 0,
            remote_armed: 0,
            parked_armed: 0,
            parked_claimed: 0,
            done_head: NIL,
            done_tail: NIL,
            untracked: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// Reserves the untracked buffer, once: only the all-children scope
    /// records such exits, and a `ZREAP_OWN` program's forks need not copy a
    /// mapping of it. `ENOMEM` when it cannot. Ordinary context.
    pub fn reserve_buffer(&mut self) -> std::io::Result<()> {
        if self.untracked.capacity() < UNTRACKED_CAPACITY {
            self.untracked
                .try_reserve_exact(UNTRACKED_CAPACITY - self.untracked.len())
                .map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        }
        Ok(())
    }

    /// Makes room for one more slot, so that adding it cannot allocate after
    /// the child exists. Ordinary context.
    ///
    /// # Errors
    /// `ENOMEM` when the slots' or the pid map's mapping cannot grow.
    pub fn reserve_slot(&mut self) -> std::io::Result<()> {
        self.slots.try_reserve(1)?;
        if self.watched == 0 && self.remote_armed == 0 && self.fallback.is_empty() {
            // Only a saving: an inherited mapping costs forks, nothing else.
            let _ = self.slots.set_inherited(false);
        }
        // Room for every slot: a pass (in the handler too) may move any
        // number of remote children to the fallback list.
        self.fallback.reserve(self.slots.len() + 1);
        self.by_pid.reserve(1)
    }

    pub fn slot(&self, idx: u32) -> &Slot {
        &self.slots[idx as usize]
    }

    pub fn slot_mut(&mut self, idx: u32) -> &mut Slot {
        &mut self.slots[idx as usize]
    }

    /// Adds a live child after [`Table::reserve_slot`]; returns its index.
    pub fn insert(&mut self, pid: pid_t, private: bool) -> u32 {
        let idx = match self.free_head {
            NIL => {
                self.slots.push(Slot::FREE);
                (self.slots.len() - 1) as u32
            }
            idx => {
                self.free_head = self.slots[idx as usize].next;
                idx
            }
        };
        let generation = self.slots[idx as usize].generation.wrapping_add(1).max(1);
        self.slots[idx as usize] = Slot { pid, state: SlotState::Live, private, generation, ..Slot::FREE };
        self.link_pid(idx);
        if !private {
            self.live += 1;
            COUNTERS.add_tracked(1);
        }
        idx
    }

    /// Gives a live slot its pidfd in the shared table. Ordinary context.
    pub fn set_pidfd(&mut self, idx: u32, pidfd: RawFd) {
        self.share_slots();
        self.slots[idx as usize].pidfd = pidfd;
        self.watched += 1;
    }

    /// Has a fork's child inherit the slots, from before a slot gets a pidfd
    /// in the shared table, a remote registration or a place on the fallback
    /// list until none is left ([`Table::reserve_slot`]): the child closes
    /// those pidfds, and the scope of the library's own children reads slots
    /// for them in every pass, which a process made by a raw `clone` (no
    /// fork handlers) runs with its parent's table. Without a pass reading
    /// them, the slots stay out of forks. Async-signal-safe (`madvise`); if
    /// it fails, the slots stay out: a pidfd, close-on-exec, then stays open
    /// in a forked child that does not exec.
    pub fn share_slots(&mut self) {
        let _ = self.slots.set_inherited(true);
    }

    /// Puts a live slot on the fallback list (reserved room).
    pub fn add_fallback(&mut self, idx: u32) {
        self.share_slots();
        self.fallback.push(idx);
    }

    /// Marks a live slot as reaped by the keeper thread, which holds its pidfd.
    pub fn set_kept(&mut self, idx: u32, kept: bool) {
        self.slots[idx as usize].kept = kept;
    }

    /// Marks a live kept slot as remote (see [`Slot::remote`]), its
    /// registration in the reap fd armed.
    pub fn arm_remote(&mut self, idx: u32) {
        self.set_remote(idx, true);
        let slot = &mut self.slots[idx as usize];
        if !slot.armed {
            slot.armed = true;
            self.remote_armed += 1;
        }
    }

    /// Marks a live kept slot as parked (see [`Slot::parked`]), its
    /// registration in the reap fd armed.
    pub fn arm_parked(&mut self, idx: u32) {
        self.set_remote(idx, true);
        let slot = &mut self.slots[idx as usize];
        slot.parked = true;
        if !slot.armed {
            slot.armed = true;
            self.parked_armed += 1;
        }
    }

    /// Marks live kept slot `idx` as claimed by a blocking wait, which reaps
    /// the child itself.
    pub fn claim(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if !slot.claimed {
            slot.claimed = true;
            if slot.parked && slot.armed {
                self.parked_claimed += 1;
            }
        }
    }

    /// Makes live remote slot `idx` the keeper's to watch and reap, as a
    /// kept child: no longer remote or parked. Its registration in the reap
    /// fd, if it reports later, is ignored.
    pub fn unpark(&mut self, idx: u32) {
        self.set_remote(idx, false);
        self.slots[idx as usize].parked = false;
    }

    /// The live parked slots (see [`Slot::parked`]). Ordinary context.
    pub fn parked_slots(&self) -> Vec<u32> {
        let parked = |slot: &Slot| slot.state == SlotState::Live && slot.parked && slot.remote;
        (0..self.slots.len() as u32).filter(|&idx| parked(&self.slots[idx as usize])).collect()
    }

    /// The registration of remote slot `idx` reported, or is gone with the
    /// keeper's pidfd.
    pub fn disarm_remote(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if slot.armed {
            slot.armed = false;
            if slot.parked {
                self.parked_armed -= 1;
                if slot.claimed {
                    self.parked_claimed -= 1;
                }
            } else {
                self.remote_armed -= 1;
            }
        }
    }

    /// Marks a live kept slot as remote (see [`Slot::remote`]) or not; one
    /// that is no longer remote has no registration left to report (the
    /// keeper closes its pidfd).
    pub fn set_remote(&mut self, idx: u32, remote: bool) {
        let slot = &mut self.slots[idx as usize];
        if slot.remote != remote {
            slot.remote = remote;
            if remote {
                self.remote += 1;
            } else {
                self.remote -= 1;
                self.disarm_remote(idx);
            }
        }
    }

    /// Leaves a live slot's liveness counters (it stops being live).
    fn leave_live(&mut self, idx: u32) {
        let Slot { pidfd, private, .. } = self.slots[idx as usize];
        if pidfd >= 0 {
            self.watched -= 1;
        }
        self.set_remote(idx, false);
        if !private {
            self.live -= 1;
        }
    }

    /// Appends a new slot to its pid's chain (creation order).
    fn link_pid(&mut self, idx: u32) {
        let pid = self.slots[idx as usize].pid;
        let Some(head) = self.by_pid.get(pid) else {
            self.by_pid.insert(pid, idx);
            return;
        };
        let mut cur = head;
        while self.slots[cur as usize].newer != NIL {
            cur = self.slots[cur as usize].newer;
        }
        self.slots[cur as usize].newer = idx;
    }

    /// Removes a slot from its pid's chain.
    fn unlink_pid(&mut self, idx: u32) {
        let Slot { pid, newer, .. } = self.slots[idx as usize];
        let Some(head) = self.by_pid.get(pid) else { return };
        if head == idx {
            if newer == NIL {
                self.by_pid.remove(pid);
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

    /// The slots of `pid`, oldest first (copied out: the caller may change
    /// the table between steps through [`Table::next_of`]).
    pub fn first_of(&self, pid: pid_t) -> u32 {
        self.by_pid.get(pid).unwrap_or(NIL)
    }

    /// The slot after `idx` in its pid's chain, or [`NIL`].
    pub fn next_of(&self, idx: u32) -> u32 {
        self.slots[idx as usize].newer
    }

    /// The oldest slot of `pid` that is the program's (not the library's own).
    pub fn first_public(&self, pid: pid_t) -> Option<u32> {
        let mut cur = self.first_of(pid);
        while cur != NIL {
            if !self.slots[cur as usize].private {
                return Some(cur);
            }
            cur = self.next_of(cur);
        }
        None
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

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Records the end of a live tracked child: `Some(status)` when reaped by
    /// the library, None when someone else reaped it. Returns the pidfd the
    /// caller must stop watching and close (-1: none). Async-signal-safe.
    pub fn finish(&mut self, idx: u32, status: Option<c_int>) -> RawFd {
        let Slot { pidfd, kept, .. } = self.slots[idx as usize];
        self.leave_live(idx);
        if pidfd < 0 && !kept {
            if let Some(pos) = self.fallback.iter().position(|&i| i == idx) {
                self.fallback.swap_remove(pos);
            }
        }
        let seq = self.next_seq();
        let slot = &mut self.slots[idx as usize];
        slot.pidfd = -1;
        slot.kept = false;
        slot.claimed = false;
        slot.state = if status.is_some() { SlotState::Exited } else { SlotState::Lost };
        slot.status = status.unwrap_or(0);
        slot.seq = seq;
        if status.is_some() {
            COUNTERS.add_reaped(1);
        }
        if !slot.private {
            self.push_done(idx);
        }
        pidfd
    }

    /// Records an exit in the bounded buffer of untracked children; returns
    /// whether the oldest was dropped to make room. Async-signal-safe.
    pub fn record_untracked(&mut self, exit: Exit) -> bool {
        if self.untracked.capacity() < UNTRACKED_CAPACITY {
            // Never reserved: pushing would allocate. The scopes that record
            // such exits reserve it first ([`Table::reserve_buffer`]).
            COUNTERS.add_reaped(1);
            COUNTERS.add_dropped(1);
            return true;
        }
        let dropped = self.untracked.len() >= UNTRACKED_CAPACITY;
        if dropped {
            self.untracked.pop_front();
            COUNTERS.add_dropped(1);
        }
        COUNTERS.add_reaped(1);
        let seq = self.next_seq();
        self.untracked.push_back(Record { exit, seq });
        dropped
    }

    pub fn untracked_full(&self) -> bool {
        self.untracked.len() >= UNTRACKED_CAPACITY
    }

    pub fn has_records(&self) -> bool {
        self.done_head != NIL || !self.untracked.is_empty()
    }

    /// Frees a slot (delivered, lost, or the library's own child collected).
    /// Returns the pidfd to stop watching and close if it was still live.
    pub fn free_slot(&mut self, idx: u32) -> RawFd {
        let Slot { state, private, pidfd, .. } = self.slots[idx as usize];
        if state == SlotState::Live {
            self.fallback.retain(|&i| i != idx);
            self.leave_live(idx);
        } else if !private {
            self.unlink_done(idx);
        }
        if !private {
            COUNTERS.add_tracked(-1);
        }
        self.unlink_pid(idx);
        self.slots[idx as usize] =
            Slot { generation: self.slots[idx as usize].generation, next: self.free_head, ..Slot::FREE };
        self.free_head = idx;
        if state == SlotState::Live {
            pidfd
        } else {
            -1
        }
    }

    /// Takes the oldest undelivered exit of any child. Slots whose child
    /// someone else reaped carry nothing: they are freed on the way.
    pub fn take_any(&mut self) -> Option<Exit> {
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
            (Some(idx), Some(r)) if r.seq < self.slots[idx as usize].seq => self.pop_untracked(),
            (Some(idx), _) => Some(self.deliver(idx)),
            (None, Some(_)) => self.pop_untracked(),
            (None, None) => None,
        }
    }

    fn pop_untracked(&mut self) -> Option<Exit> {
        let exit = self.untracked.pop_front()?.exit;
        self.rewind_when_empty();
        COUNTERS.add_reported(1);
        Some(exit)
    }

    /// After a removal from the untracked buffer: once it is empty, the next
    /// exit goes to its start again, so that a steady trickle of exits does not
    /// walk through (and touch) every page of the buffer. Async-signal-safe
    /// (no allocation: the buffer keeps its capacity).
    fn rewind_when_empty(&mut self) {
        if self.untracked.is_empty() {
            self.untracked.clear();
        }
    }

    /// Takes the next exit of `pid`. When `pid` has tracked slots, only they
    /// answer, oldest first (creation order); otherwise the oldest untracked
    /// exit of `pid`.
    pub fn take_pid(&mut self, pid: pid_t) -> Taken {
        if let Some(idx) = self.first_public(pid) {
            return match self.slots[idx as usize].state {
                SlotState::Exited => Taken::Exit(self.deliver(idx)),
                SlotState::Lost => {
                    self.free_slot(idx);
                    Taken::Lost
                }
                _ => Taken::Nothing,
            };
        }
        let pos = self.untracked.iter().position(|r| r.exit.pid == pid);
        match pos.and_then(|p| self.untracked.remove(p)) {
            Some(r) => {
                self.rewind_when_empty();
                COUNTERS.add_reported(1);
                Taken::Exit(r.exit)
            }
            None => Taken::Nothing,
        }
    }

    /// Removes the newest untracked exit of `pid`, if any.
    /// (It is then not counted as reaped by the library.)
    pub fn remove_newest_untracked(&mut self, pid: pid_t) -> bool {
        let pos = self.untracked.iter().rposition(|r| r.exit.pid == pid);
        let removed = pos.and_then(|p| self.untracked.remove(p)).is_some();
        if removed {
            self.rewind_when_empty();
            COUNTERS.add_reaped(-1);
        }
        removed
    }

    /// Frees an exited slot and returns its exit.
    fn deliver(&mut self, idx: u32) -> Exit {
        let slot = self.slots[idx as usize];
        self.free_slot(idx);
        COUNTERS.add_reported(1);
        Exit::from_raw(slot.pid, slot.status)
    }

    /// Takes every undelivered exit, oldest first.
    pub fn take_all(&mut self) -> Vec<Exit> {
        let mut records: Vec<Record> = self.untracked.drain(..).collect();
        self.rewind_when_empty();
        while self.done_head != NIL {
            let idx = self.done_head;
            let slot = self.slots[idx as usize];
            if slot.state == SlotState::Exited {
                records.push(Record { exit: Exit::from_raw(slot.pid, slot.status), seq: slot.seq });
            }
            self.free_slot(idx);
        }
        records.sort_unstable_by_key(|r| r.seq);
        COUNTERS.add_reported(records.len() as i64);
        records.into_iter().map(|r| r.exit).collect()
    }

    /// The pids of the live children without a pidfd.
    pub fn fallback_pids(&self) -> Vec<pid_t> {
        self.fallback.iter().map(|&i| self.slots[i as usize].pid).collect()
    }

    /// In a forked child, where the parent's children are not ours: forgets
    /// everything. Calls `close` for every pidfd in the shared table (the
    /// keeper's are not in this one), looking only as far as the last of
    /// them: with the keeper there are none, and a child on its way to exec
    /// does not read thousands of slots. Async-signal-safe.
    pub fn reset_in_child(&mut self, close: fn(RawFd)) {
        let mut open = if self.slots.inherited() { self.watched } else { 0 };
        for slot in self.slots.iter() {
            if open == 0 {
                break;
            }
            if slot.pidfd >= 0 {
                close(slot.pidfd);
                open -= 1;
            }
        }
        self.watched = 0;
        self.remote = 0;
        self.remote_armed = 0;
        self.parked_armed = 0;
        self.parked_claimed = 0;
        self.slots.reset_in_child();
        self.free_head = NIL;
        self.by_pid.reset_in_child();
        self.fallback.clear();
        self.live = 0;
        self.done_head = NIL;
        self.done_tail = NIL;
        self.untracked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new();
        t.reserve_buffer().unwrap();
        t
    }

    fn add(t: &mut Table, pid: pid_t) -> u32 {
        t.reserve_slot().unwrap();
        t.insert(pid, false)
    }

    fn code(exit: Exit) -> (pid_t, i32) {
        (exit.pid, exit.status.code().unwrap())
    }

    #[test]
    fn a_pid_reused_by_tracked_children_answers_in_creation_order() {
        let mut t = table();
        let first = add(&mut t, 100);
        t.finish(first, Some(7 << 8));
        let second = add(&mut t, 100);
        assert_eq!(t.take_pid(100), Taken::Exit(Exit::from_raw(100, 7 << 8)));
        assert_eq!(t.take_pid(100), Taken::Nothing); // the second is still running
        t.finish(second, Some(9 << 8));
        assert_eq!(t.take_pid(100).exit().map(code), Some((100, 9)));
        assert_eq!(t.take_pid(100), Taken::Nothing);
        assert_eq!(t.live, 0);
        assert!(!t.has_records());
    }

    #[test]
    fn a_tracked_pid_never_takes_an_older_untracked_exit() {
        let mut t = table();
        t.record_untracked(Exit::from_raw(100, 13 << 8));
        let idx = add(&mut t, 100);
        assert_eq!(t.take_pid(100), Taken::Nothing);
        t.finish(idx, Some(42 << 8));
        assert_eq!(t.take_pid(100).exit().map(code), Some((100, 42)));
        // The stale exit is still there for take_any, delivered once.
        assert_eq!(t.take_any().map(code), Some((100, 13)));
        assert_eq!(t.take_any(), None);
    }

    #[test]
    fn a_remote_registration_is_counted_until_it_reports_or_its_child_leaves() {
        let mut t = table();
        let reported = add(&mut t, 5);
        let reaped_first = add(&mut t, 6);
        t.arm_remote(reported);
        t.arm_remote(reaped_first);
        assert_eq!(t.remote_armed, 2);
        // Its event came, then the child was reaped: counted once.
        t.disarm_remote(reported);
        t.finish(reported, Some(0));
        assert_eq!(t.remote_armed, 1);
        // Reaped by a wait before any event: the pidfd, and with it the
        // registration, goes away.
        t.finish(reaped_first, Some(0));
        assert_eq!((t.remote_armed, t.remote), (0, 0));
    }

    #[test]
    fn a_claimed_parked_registration_is_counted_apart_until_it_reports_or_its_child_leaves() {
        let mut t = table();
        let [reported, reaped, unclaimed] = [5, 6, 7].map(|pid| add(&mut t, pid));
        for idx in [reported, reaped, unclaimed] {
            t.set_kept(idx, true);
            t.arm_parked(idx);
        }
        t.claim(reported);
        t.claim(reaped);
        t.claim(reaped);
        assert_eq!((t.parked_armed, t.parked_claimed), (3, 2));
        // Its event came before its wait reaped it.
        t.disarm_remote(reported);
        assert_eq!((t.parked_armed, t.parked_claimed), (2, 1));
        t.finish(reported, Some(0));
        // Reaped by its wait before the event: the registration goes too.
        t.finish(reaped, Some(0));
        assert_eq!((t.parked_armed, t.parked_claimed), (1, 0));
        // A claim after the event counts nothing.
        t.disarm_remote(unclaimed);
        t.claim(unclaimed);
        assert_eq!((t.parked_armed, t.parked_claimed), (0, 0));
    }

    #[test]
    fn a_lost_child_answers_once_and_carries_nothing_for_take_any() {
        let mut t = table();
        let a = add(&mut t, 5);
        let b = add(&mut t, 6);
        t.finish(a, None);
        t.finish(b, None);
        assert_eq!(t.take_pid(5), Taken::Lost);
        assert_eq!(t.take_pid(5), Taken::Nothing);
        assert_eq!(t.take_any(), None);
        assert!(!t.has_records());
    }

    #[test]
    fn take_all_and_take_any_follow_the_order_of_records() {
        let mut t = table();
        let a = add(&mut t, 1);
        t.record_untracked(Exit::from_raw(2, 2 << 8));
        t.finish(a, Some(1 << 8));
        t.record_untracked(Exit::from_raw(3, 3 << 8));
        let pids: Vec<pid_t> = t.take_all().into_iter().map(|e| e.pid).collect();
        assert_eq!(pids, [2, 1, 3]);
        let b = add(&mut t, 4);
        t.record_untracked(Exit::from_raw(5, 0));
        t.finish(b, Some(0));
        assert_eq!(t.take_any().map(|e| e.pid), Some(5));
        assert_eq!(t.take_any().map(|e| e.pid), Some(4));
    }

    #[test]
    fn an_unreserved_untracked_buffer_drops_the_exit_rather_than_allocate() {
        let mut t = Table::new();
        assert!(t.record_untracked(Exit::from_raw(7, 0)));
        assert_eq!(t.untracked.capacity(), 0);
        assert_eq!(t.take_any(), None);
        t.reserve_buffer().unwrap();
        let capacity = t.untracked.capacity();
        assert!(capacity >= UNTRACKED_CAPACITY);
        assert!(!t.record_untracked(Exit::from_raw(8, 0)));
        t.reserve_buffer().unwrap();
        assert_eq!(t.untracked.capacity(), capacity, "a second reservation grew the buffer");
        assert_eq!(t.take_any().map(|e| e.pid), Some(8));
    }

    #[test]
    fn the_untracked_buffer_drops_the_oldest_when_full() {
        let mut t = table();
        for pid in 0..UNTRACKED_CAPACITY as pid_t {
            assert!(!t.record_untracked(Exit::from_raw(pid + 1, 0)));
        }
        assert!(t.untracked_full());
        assert!(t.record_untracked(Exit::from_raw(999_999, 0)));
        assert_eq!(t.take_any().map(|e| e.pid), Some(2));
    }

    #[test]
    fn the_untracked_buffer_never_grows_and_starts_over_once_emptied() {
        let mut t = table();
        let capacity = t.untracked.capacity();
        assert!(capacity >= UNTRACKED_CAPACITY);
        t.record_untracked(Exit::from_raw(1, 0));
        let start: *const Record = &t.untracked[0];
        for pid in 2..1000 {
            assert_eq!(t.take_any().map(|e| e.pid), Some(pid - 1));
            t.record_untracked(Exit::from_raw(pid, 0));
            assert!(std::ptr::eq(&t.untracked[0], start), "record {pid} went past the buffer's start");
        }
        assert_eq!(t.take_pid(999), Taken::Exit(Exit::from_raw(999, 0)));
        t.record_untracked(Exit::from_raw(1000, 0));
        assert_eq!(t.take_all().len(), 1);
        t.record_untracked(Exit::from_raw(1001, 0));
        assert!(std::ptr::eq(&t.untracked[0], start));
        for pid in 0..=UNTRACKED_CAPACITY as pid_t {
            t.record_untracked(Exit::from_raw(pid + 2000, 0));
        }
        assert_eq!(t.untracked.capacity(), capacity);
    }

    #[test]
    fn private_slots_are_never_delivered_and_free_cleanly() {
        let mut t = table();
        t.reserve_slot().unwrap();
        let own = t.insert(50, true);
        let public = add(&mut t, 50);
        assert_eq!(t.first_public(50), Some(public));
        t.finish(own, Some(0));
        assert_eq!(t.take_any(), None);
        t.free_slot(own);
        t.finish(public, Some(3 << 8));
        assert_eq!(t.take_pid(50).exit().map(code), Some((50, 3)));
        assert_eq!(t.first_of(50), NIL);
    }

    #[test]
    fn freeing_a_slot_in_the_middle_of_a_chain_keeps_the_rest() {
        let mut t = table();
        let a = add(&mut t, 9);
        let b = add(&mut t, 9);
        let c = add(&mut t, 9);
        assert_eq!(t.free_slot(b), -1);
        assert_eq!(t.first_of(9), a);
        assert_eq!(t.next_of(a), c);
        t.free_slot(a);
        assert_eq!(t.first_of(9), c);
        assert_eq!(t.live, 1);
    }

    #[test]
    fn the_fallback_list_has_room_for_every_slot_without_allocating() {
        let mut t = table();
        for pid in 1..=20 {
            add(&mut t, pid);
        }
        assert!(t.fallback.capacity() >= 20);
    }

    #[test]
    fn a_reused_slot_has_a_new_generation() {
        let mut t = table();
        let first = add(&mut t, 30);
        let generation = t.slot(first).generation;
        assert_ne!(generation, 0);
        t.finish(first, Some(0));
        assert!(t.take_pid(30).exit().is_some());
        let second = add(&mut t, 31);
        assert_eq!(second, first);
        assert_ne!(t.slot(second).generation, generation);
    }

    impl Taken {
        fn exit(self) -> Option<Exit> {
            match self {
                Taken::Exit(e) => Some(e),
                _ => None,
            }
        }
    }
}
