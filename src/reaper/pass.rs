//! The pass: reaps every exited child in scope and records its exit, telling
//! each child apart from a later process with the same pid.
//!
//! Signal context: everything here runs in the SIGCHLD handler (through the
//! gate) and must stay async-signal-safe: only waitid, epoll_wait,
//! epoll_ctl, open, read, close, fcntl, write and sendmsg (the keeper's
//! kick), atomics, and writes to memory reserved beforehand; no allocation,
//! no lock, no panic.

use super::table::{Slot, SlotState};
use super::{events, keeper, watcher, State, REAPER};
use crate::gate::GateGuard;
use crate::sys::{self, Waited};
use libc::{c_int, pid_t};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};

/// What checking one tracked child found.
pub(super) enum Check {
    /// It was reaped now and its exit recorded.
    Reaped,
    /// It has not exited (or, without a pidfd, not been told apart yet).
    Running,
    /// Someone else reaped it: recorded as lost.
    Gone,
    /// The keeper reaps it (see [`super::keeper`]).
    Kept,
    /// A blocking wait reaps it (see `wait::reap_claimed`).
    Claimed,
}

/// What [`State::reap_pid`] did.
#[derive(PartialEq, Eq)]
pub(super) enum PidReap {
    Reaped,
    Nothing,
    /// The oldest live child of that pid, in this slot, is the keeper's.
    Kept(u32),
    /// The oldest live child of that pid is a blocking wait's to reap.
    Claimed,
}

/// Whether a SIGCHLD can find work for a pass: the all-children scope, a
/// tracked child the keeper does not reap, or a child being created (its
/// slot is not known yet). Otherwise (the scope of the library's own
/// children, all of them kept) the handler returns at once.
static PASS_WANTED: &AtomicBool = &super::HOT.pass.pass_wanted;
/// Tracked children being created right now (see [`creating`]).
static CREATING: &AtomicUsize = &super::HOT.pass.creating;
/// The child whose exit the last SIGCHLD reported (0: none), until a pass
/// takes it: the all-children pass reaps it by pid before its walk of the
/// children, so that the walk, which costs O(live children), runs once per
/// SIGCHLD and not once to find that child and once more to find no other.
/// On the fork page, not the hot one: the handler writes it at every
/// SIGCHLD, in either scope, and a write to the hot page after a fork costs
/// a copy of it (a host's own `fork()` + `waitpid` paid one each).
static SIGNALLED: &AtomicI32 = &super::FORK_PAGE.signalled;

/// This module's words on the reaper's page of hot words ([`super::Hot`]).
pub(super) struct Words {
    pass_wanted: AtomicBool,
    creating: AtomicUsize,
}

impl Words {
    pub(super) const fn new() -> Words {
        Words { pass_wanted: AtomicBool::new(true), creating: AtomicUsize::new(0) }
    }
}

/// Called by the SIGCHLD handler with the child whose exit the kernel
/// reported, if any. Async-signal-safe.
pub(super) fn pass_from_signal(exited: Option<pid_t>) {
    if PASS_WANTED.load(SeqCst) || CREATING.load(SeqCst) > 0 {
        if let Some(pid) = exited {
            SIGNALLED.store(pid, SeqCst);
        }
        REAPER.run_or_defer(pass);
    }
}

/// A child is about to be created (the gate is held until [`created`]).
pub(super) fn creating() {
    CREATING.fetch_add(1, SeqCst);
}

/// The child of [`creating`] is registered and the gate let go.
pub(super) fn created() {
    CREATING.fetch_sub(1, SeqCst);
}

/// Whether a thread is creating a tracked child (the fork of a `zfork`, or a
/// fork made while one was registered). Async-signal-safe; reads only.
#[inline]
pub(super) fn creation_under_way() -> bool {
    CREATING.load(SeqCst) > 0
}

/// In a forked child: no creation is under way. Returns whether one was in
/// the parent. Post-fork code.
pub(super) fn forget_creating_in_child() -> bool {
    CREATING.swap(0, SeqCst) > 0
}

impl State {
    /// Works out [`PASS_WANTED`] from the state. Gate held.
    pub(super) fn publish_pass_wanted(&self) {
        // Remote children are the program's to reap, through the reap fd,
        // parked ones (made under zreap's handler) the passes', but for those
        // a blocking wait claimed (it reaps its child itself).
        let table = &self.table;
        let parked = table.parked_armed > table.parked_claimed;
        let wanted = !self.scope_own() || table.watched > 0 || parked || !table.fallback.is_empty();
        PASS_WANTED.store(wanted, SeqCst);
    }
}

/// Reaps every exited child in scope and records its exit. Runs under the
/// gate, from the SIGCHLD handler or from ordinary context.
pub(super) fn pass(st: &mut State) {
    if !st.adopt() {
        // A raw clone's copy of the process: its state is not its own.
        return;
    }
    sweep(st, false);
}

/// [`sweep`] in ordinary context until it no longer stops at a kept child:
/// while the keeper reaps one, the gate is let go and taken again once it has
/// recorded something.
pub(super) fn sweep_settled(mut st: GateGuard<'static, State>) -> GateGuard<'static, State> {
    while sweep(&mut st, true) {
        let seen = watcher::wake_count();
        drop(st);
        watcher::sleep(seen, Some(100));
        st = super::lock();
    }
    st
}

/// The body of [`pass`]. With `for_caller` (ordinary context, a caller
/// waiting to take the exits), untracked children stay zombies once the
/// buffer is full instead of pushing older exits out: the caller takes the
/// batch and sweeps again.
///
/// In the all-children scope it looks at each exited child first (so that a
/// tracer's ptrace stops are never taken) and reaps it through its slot, so
/// that one walk of the children per SIGCHLD finds every exit; the child
/// that SIGCHLD reported is taken by pid before the walk. Only where a wait
/// has claimed a child, or at a kept one (the keeper reaps it and then has
/// the next pass run), it stops and returns true.
pub(super) fn sweep(st: &mut State, for_caller: bool) -> bool {
    if !st.ready {
        return false;
    }
    let mut at_kept = false;
    let mut taken_elsewhere = false;
    let before = st.table.next_seq;
    let live_before = st.table.live;
    // A process made by a raw clone (no fork handlers) runs this handler with
    // its parent's state but without the slots, which forks leave out, and
    // with its parent's reap fd: it leaves its parent's children alone. (A
    // remote child's slot is inherited: see `Table::share_slots`.)
    let walks = !st.scope_own();
    // SAFETY: getpid cannot fail.
    let ours = (walks || st.table.parked_armed > 0) && unsafe { libc::getpid() } == st.owner;
    if st.table.watched > 0 || st.table.remote_armed > 0 || (ours && st.table.parked_armed > 0) {
        reap_watched(st);
    }
    if !walks {
        check_fallback(st);
    } else if ours {
        let named = SIGNALLED.swap(0, SeqCst);
        let mut signalled = Some(named).filter(|&pid| pid > 0 && sys::exited_unreaped(pid));
        // The child the SIGCHLD named (or, below, one the walk saw) was
        // reaped by someone else: the keeper, a claiming wait, or a wait
        // outside the library. If no tracked child is left, waits asleep for
        // any child look again, in case that was the last child.
        taken_elsewhere = named > 0 && signalled.is_none();
        while !(for_caller && st.table.untracked_full()) {
            let from_signal = signalled.is_some();
            let Some(pid) = signalled.take().or_else(sys::peek_exited_child) else { break };
            match st.reap_pid(pid, true, false) {
                PidReap::Reaped => {}
                // Taken by another wait since it was named or seen: the walk
                // goes on, since the children behind it may have no SIGCHLD
                // left to come (it was one signal for all of them), and
                // waits are woken below if that was the last child.
                PidReap::Nothing if from_signal || !sys::exited_unreaped(pid) => taken_elsewhere = true,
                // Still there, yet not to be reaped now: the next pass tries.
                PidReap::Nothing => break,
                // The keeper reaps it through its pidfd, which tells it from a
                // later process under its pid (if a foreign wait took it),
                // and then has the next pass run.
                PidReap::Kept(_) => {
                    keeper::kick();
                    at_kept = true;
                    break;
                }
                // Its wait runs a pass once it has reaped it.
                PidReap::Claimed => {
                    at_kept = true;
                    break;
                }
            }
        }
    }
    if st.table.next_seq != before {
        if for_caller {
            // The caller takes the exits and then sets the eventfd to what
            // is left (`events::sync_eventfd`).
            watcher::wake();
        } else {
            st.notify();
        }
    } else if (taken_elsewhere || st.table.live != live_before) && st.table.live == 0 {
        // The last tracked child was found taken by a foreign wait.
        watcher::wake();
    }
    at_kept
}

/// Checks the tracked children that have no pidfd.
fn check_fallback(st: &mut State) {
    let mut i = 0;
    while i < st.table.fallback.len() {
        match st.check_slot(st.table.fallback[i], false) {
            Check::Running | Check::Kept | Check::Claimed => i += 1,
            // The slot left the fallback list.
            Check::Reaped | Check::Gone => {}
        }
    }
}

/// Reaps the tracked children whose pidfds are readable: those in the shared
/// table through their pidfd, remote ones by pid (see [`State::reap_remote`]).
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
            if event.u64 == events::EVENTFD_TAG {
                continue;
            }
            children += 1;
            let idx = event.u64 as u32;
            let slot = *st.table.slot(idx);
            let remote = event.u64 & events::REMOTE != 0;
            // An earlier child's registration, reported late, was disarmed
            // when that child left the slot.
            let this_child = remote && events::is_remote_data(event.u64, idx, slot.generation);
            if this_child {
                st.table.disarm_remote(idx);
            }
            if slot.state != super::table::SlotState::Live || slot.claimed {
                continue;
            }
            if remote {
                if this_child && slot.remote {
                    st.reap_remote(idx, Some(event.events));
                }
            } else if slot.pidfd >= 0 {
                st.check_slot(idx, false);
            }
        }
        if children == 0 || (n as usize) < BATCH {
            return;
        }
    }
}

impl State {
    /// Reaps remote child `idx` if it has exited: by pid, which names it
    /// while it is unreaped, since only the passes (under the gate) and a
    /// wait that claimed it reap a remote child. Once reaped (or found taken
    /// by a foreign wait), its pidfd goes back to the keeper to be closed.
    ///
    /// With `reported`, the events its one-shot registration in the reap fd
    /// reported as the pass read it: the child has ended. `EPOLLHUP` says it
    /// was reaped already, and not by the library (Linux 6.9 and later): a
    /// foreign wait took it, and its pid may name another process since. If
    /// it cannot be reaped now, a tracer holds it, or a foreign wait took it
    /// (on older kernels); the keeper, which holds its pidfd, then watches it
    /// and tells the two apart. Without (a wait or a scan asked), the reap
    /// fd's events are read first, for the same answer: one system call, as
    /// many as a look by pid, while the child runs.
    fn reap_remote(&mut self, idx: u32, reported: Option<u32>) -> Check {
        if reported.is_none() && self.table.slot(idx).armed {
            let before = self.table.next_seq;
            reap_watched(self);
            if self.table.next_seq != before {
                // Other children's exits were recorded on the way.
                self.notify();
            }
            let slot = *self.table.slot(idx);
            match slot.state {
                // Its registration has not reported: it cannot be reaped yet
                // (a pidfd reports before its process can be waited for).
                SlotState::Live if slot.remote && slot.armed => return Check::Running,
                SlotState::Live if slot.remote => {}
                SlotState::Live if slot.kept => return Check::Kept,
                // Handed to the fallback list, which the passes check.
                SlotState::Live => return Check::Running,
                SlotState::Exited => return Check::Reaped,
                _ => return Check::Gone,
            }
        }
        let Slot { pid, generation, armed, .. } = *self.table.slot(idx);
        if reported.is_some_and(|events| events & libc::EPOLLHUP as u32 != 0) {
            self.finish(idx, None);
            self.release_remote(idx, generation, armed);
            return Check::Gone;
        }
        let found = sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG | libc::__WALL);
        let check = match found {
            Ok(Waited::Exited(_, status)) => {
                self.finish(idx, Some(status));
                Check::Reaped
            }
            Ok(Waited::NotYet) if reported.is_none() => return Check::Running,
            Ok(Waited::NotYet) => {
                self.table.unpark(idx);
                if !keeper::watch(idx, generation, pid, false) {
                    self.watch_without_keeper(idx, pid, true);
                }
                self.publish_pass_wanted();
                return Check::Running;
            }
            Err(_) => {
                self.finish(idx, None);
                Check::Gone
            }
        };
        self.release_remote(idx, generation, armed);
        check
    }

    /// Gives the pidfd of remote child `idx`, which has left its slot, back
    /// to the keeper to close. If its registration in the reap fd had not
    /// reported (`armed`: a wait or a walk reaped it, or a foreign wait did),
    /// its event is taken first: the child has ended, so the event is ready
    /// (the kernel wakes a pidfd's pollers before the child can be reaped),
    /// and any other ready one is handled as a pass would. Else the reap fd
    /// stayed readable with nothing to reap until the keeper closed the
    /// pidfd, which a keeper with nothing else to do never did. Gate held.
    /// Async-signal-safe.
    pub(super) fn release_remote(&mut self, idx: u32, generation: u32, armed: bool) {
        if armed {
            let before = self.table.next_seq;
            reap_watched(self);
            if self.table.next_seq != before {
                self.notify();
            }
        }
        keeper::release_remote(idx, generation);
    }

    /// Remote child `idx`, which the keeper could not be asked to watch, is
    /// watched by pid on the fallback list, identified by its start time read
    /// now. One that has `ended` (its pidfd reported) but cannot be reaped is
    /// held by a tracer if `pid` names a zombie; a process in any other state
    /// under its pid is another one (a foreign wait took the child), and the
    /// child is recorded as lost. Its pidfd goes back to the keeper to be
    /// closed. Gate held; async-signal-safe.
    fn watch_without_keeper(&mut self, idx: u32, pid: pid_t, ended: bool) {
        let generation = self.table.slot(idx).generation;
        keeper::release_remote(idx, generation);
        let start_time = match sys::proc_stat(pid) {
            Ok(stat) if !ended || stat.state == b'Z' => stat.start_time,
            // Unknown: checked as that of any process under the pid.
            Err(errno) if !ended && errno != libc::ENOENT => 0,
            _ => return self.finish(idx, None),
        };
        self.table.set_kept(idx, false);
        self.table.slot_mut(idx).start_time = start_time;
        self.table.add_fallback(idx);
        watcher::publish_mode(self);
    }

    /// Hands every parked child to the keeper to watch and reap: the
    /// handler, whose passes reaped them, is gone. Gate held;
    /// ordinary context.
    pub(super) fn unpark_all(&mut self) {
        for idx in self.table.parked_slots() {
            let Slot { pid, generation, .. } = *self.table.slot(idx);
            self.table.unpark(idx);
            if !keeper::watch(idx, generation, pid, true) {
                self.watch_without_keeper(idx, pid, false);
            }
        }
        self.publish_pass_wanted();
    }

    /// The start time of `pid`, read through the spare fd's place in the fd
    /// table when the table is full.
    fn start_time(&mut self, pid: pid_t) -> Option<u64> {
        match sys::proc_start_time(pid) {
            Err(libc::EMFILE) if self.spare_fd >= 0 => {}
            found => return found.ok(),
        }
        sys::close(self.spare_fd);
        let t = sys::proc_start_time(pid).ok();
        self.spare_fd = sys::dup_cloexec(self.efd).unwrap_or(-1);
        t
    }

    /// Records the end of the tracked child in slot `idx`.
    fn finish(&mut self, idx: u32, status: Option<c_int>) {
        let pidfd = self.table.finish(idx, status);
        events::unwatch(self, pidfd);
    }

    /// Tells waiters that exits were recorded: the eventfd (when the reap fd
    /// is in use) and the wake word. Async-signal-safe.
    pub(super) fn notify(&self) {
        if self.fd_wanted {
            events::signal(self.efd);
        }
        watcher::wake();
    }

    /// Registers a new tracked child (`pidfd` taken over). The keeper gets
    /// its pidfd if it can, in one of three ways:
    /// - parked, under zreap's handler (in the scope of the library's own
    ///   children only while the reap fd is not in use and the handler can
    ///   run): the reap fd's set watches the pidfd, and the pass that each
    ///   SIGCHLD runs reaps the child when its registration reports (a
    ///   foreign wait that took it included); the keeper only holds the pidfd
    ///   and is not woken by the exit (a wake-up costs a context switch on the
    ///   program's CPU, a keeper running on another CPU would slow the
    ///   program's next fork, and it would wait for the gate);
    /// - remote while the reap fd is in use, in the scope of the library's own
    ///   children or without a handler: the program reaps through the reap
    ///   fd, with no thread in between (the handler has nothing to do);
    /// - otherwise for the keeper to watch and reap.
    ///
    /// Without the keeper it is watched in the shared table, and without a
    /// pidfd it is watched by pid, identified by its start time. Ordinary
    /// context, gate held, slot reserved.
    pub(super) fn track(&mut self, pid: pid_t, pidfd: Option<i32>, private: bool) -> u32 {
        let idx = self.table.insert(pid, private);
        let generation = self.table.slot(idx).generation;
        let remote = self.fd_wanted && (self.scope_own() || !self.handler_active());
        // A handler that can never run leaves the passes to the watcher,
        // which in this scope may wait on a plain child's zombie that is not
        // the library's to reap: the keeper then reaps tracked ones.
        let stand_in_may_stall = self.scope_own() && watcher::handler_blocked();
        let parked = !remote && self.handler_active() && !stand_in_may_stall;
        let give = |st: &mut State, fd| {
            if parked && events::watch_remote(st, fd, idx, generation) {
                if keeper::give(idx, generation, pid, fd, true) {
                    st.table.arm_parked(idx);
                    return true;
                }
                events::unwatch_remote(st, fd);
                return false;
            }
            if remote && events::watch_remote(st, fd, idx, generation) {
                if keeper::give(idx, generation, pid, fd, true) {
                    st.table.share_slots();
                    st.table.arm_remote(idx);
                    return true;
                }
                events::unwatch_remote(st, fd);
                return false;
            }
            keeper::give(idx, generation, pid, fd, false)
        };
        match pidfd {
            Some(fd) if !private && give(self, fd) => self.table.set_kept(idx, true),
            Some(fd) if events::watch(self, fd, idx) => self.table.set_pidfd(idx, fd),
            _ => {
                let start_time = self.start_time(pid).unwrap_or(0);
                self.table.slot_mut(idx).start_time = start_time;
                self.table.add_fallback(idx);
                watcher::publish_mode(self);
            }
        }
        self.publish_pass_wanted();
        idx
    }

    /// Reaps the live tracked child in slot `idx` if it has exited, telling it
    /// apart from a later process with the same pid.
    ///
    /// With a pidfd the answer is exact. Without one, the child is reaped by
    /// pid only while its start time is the one recorded at creation; with
    /// `strict`, a running process whose start time differs is also taken as
    /// proof that the child is gone (a /proc read the pass spares itself).
    pub(super) fn check_slot(&mut self, idx: u32, strict: bool) -> Check {
        let slot = *self.table.slot(idx);
        let (pid, start_time) = (slot.pid, slot.start_time);
        if slot.claimed {
            return Check::Claimed;
        }
        if slot.remote {
            return self.reap_remote(idx, None);
        }
        if slot.kept {
            return Check::Kept;
        }
        if slot.pidfd >= 0 {
            return match sys::waitid(libc::P_PIDFD, slot.pidfd as libc::id_t, libc::WNOHANG | libc::__WALL) {
                Ok(Waited::Exited(_, status)) => {
                    self.finish(idx, Some(status));
                    Check::Reaped
                }
                Ok(Waited::NotYet) => Check::Running,
                Err(_) => {
                    self.finish(idx, None);
                    Check::Gone
                }
            };
        }
        let same_process = |st: &mut State| start_time == 0 || st.start_time(pid) == Some(start_time);
        let all = libc::WNOHANG | libc::__WALL;
        match sys::waitid(libc::P_PID, pid as libc::id_t, all | libc::WNOWAIT) {
            Ok(Waited::Exited(..)) if same_process(self) => match sys::waitid(libc::P_PID, pid as libc::id_t, all) {
                Ok(Waited::Exited(_, status)) => {
                    self.finish(idx, Some(status));
                    Check::Reaped
                }
                _ => {
                    self.finish(idx, None);
                    Check::Gone
                }
            },
            Ok(Waited::NotYet) if !strict || same_process(self) => Check::Running,
            _ => {
                self.finish(idx, None);
                Check::Gone
            }
        }
    }

    /// Reaps `pid` if it has exited: through the tracked slots of that pid,
    /// oldest first, and otherwise, with `untracked_too`, as an untracked
    /// child.
    pub(super) fn reap_pid(&mut self, pid: pid_t, untracked_too: bool, strict: bool) -> PidReap {
        let mut cur = self.table.first_of(pid);
        while cur != super::table::NIL {
            let next = self.table.next_of(cur);
            if self.table.slot(cur).state == super::table::SlotState::Live {
                match self.check_slot(cur, strict) {
                    Check::Reaped => return PidReap::Reaped,
                    Check::Running => return PidReap::Nothing,
                    Check::Kept => return PidReap::Kept(cur),
                    Check::Claimed => return PidReap::Claimed,
                    Check::Gone => {}
                }
            }
            cur = next;
        }
        if !untracked_too {
            return PidReap::Nothing;
        }
        match sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG) {
            Ok(Waited::Exited(pid, status)) => {
                self.table.record_untracked(super::Exit::from_raw(pid, status));
                PidReap::Reaped
            }
            _ => PidReap::Nothing,
        }
    }
}
