//! Delivery: waiting for one child or any, collecting every exit, the reap fd.

use super::table::{SlotState, Taken};
use super::{events, keeper, lock, pass, watcher, Exit, State, REAPER};
use crate::sys;
use libc::pid_t;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

fn error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Reaps every exited child in scope, then calls `on_exit` once for each exit
/// not yet delivered, oldest first, in ordinary context (C: `zreap_all`).
/// Never blocks. Returns how many exits it reported.
///
/// ```
/// let n = zreap::reap_all(|exit| println!("{} ended: {}", exit.pid, exit.status)).unwrap();
/// assert_eq!(n, 0);
/// ```
pub fn reap_all(mut on_exit: impl FnMut(Exit)) -> io::Result<usize> {
    let mut st = lock();
    st.ensure_ready()?;
    // A handler runs a pass for every SIGCHLD and the keeper reaps kept
    // children: sweep again only when there is nothing to take (a signal may
    // still be on its way), or when remote children are the caller's to reap.
    let sweep = !st.passes_run_alone() || !st.table.has_records();
    let mut exits = Vec::new();
    loop {
        if sweep {
            st = pass::sweep_settled(st);
        }
        let full = st.table.untracked_full();
        exits.extend(st.table.take_all());
        if !full {
            events::sync_eventfd(&st);
            break;
        }
    }
    drop(st);
    let n = exits.len();
    exits.into_iter().for_each(&mut on_exit);
    Ok(n)
}

/// Waits for child `pid` to exit and returns its exit, also when the handler
/// already reaped it (C: `zwait(pid, &st, 0)`).
///
/// Errors: `ECHILD` when `pid` is not a child in scope or its exit was already
/// delivered (to `wait` or [`reap_all`]: each exit goes to exactly one);
/// `EINVAL` when `pid` is not positive.
///
/// Pid reuse: exits of one pid are delivered in the order the processes were
/// created, and for a tracked child's pid only tracked records answer, so a
/// wait never returns the exit of an older process that had the same pid.
///
/// ```
/// let child = zreap::Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
/// let exit = zreap::wait(child.pid()).unwrap();
/// assert_eq!((exit.pid, exit.status.code()), (child.pid(), Some(3)));
/// ```
pub fn wait(pid: pid_t) -> io::Result<Exit> {
    wait_for(checked(pid)?, false).map(|exit| exit.expect("a blocking wait returns an exit"))
}

/// [`wait`] that does not block: `Ok(None)` while `pid` runs
/// (C: `zwait(pid, &st, WNOHANG)`).
pub fn try_wait(pid: pid_t) -> io::Result<Option<Exit>> {
    wait_for(checked(pid)?, true)
}

/// Waits for any child in scope and returns the oldest exit not yet delivered
/// (C: `zwait(-1, &st, 0)`). `ECHILD` when no child in scope is left.
///
/// ```
/// zreap::Command::new("true").spawn().unwrap();
/// assert!(zreap::wait_any().unwrap().status.success());
/// ```
pub fn wait_any() -> io::Result<Exit> {
    wait_for(-1, false).map(|exit| exit.expect("a blocking wait returns an exit"))
}

/// [`wait_any`] that does not block: `Ok(None)` while children in scope run
/// (C: `zwait(-1, &st, WNOHANG)`).
pub fn try_wait_any() -> io::Result<Option<Exit>> {
    wait_for(-1, true)
}

fn checked(pid: pid_t) -> io::Result<pid_t> {
    if pid > 0 {
        Ok(pid)
    } else {
        Err(error(libc::EINVAL))
    }
}

/// `pid` > 0 or -1 (any).
fn wait_for(pid: pid_t, nohang: bool) -> io::Result<Option<Exit>> {
    // Set once a second while the wait relies on the handler's passes (see
    // `Blocker::Passes`): this wait then runs one itself.
    let mut pass_here = false;
    let mut last_look = Instant::now();
    loop {
        let blocker = {
            let mut st = lock();
            st.ensure_ready()?;
            if pid > 0 {
                // This child alone: without a reaper, waiting for one child
                // must not sweep the others. A tracked pid is answered from
                // its tracked slots only. A parked child this wait is about
                // to claim needs no look first: its waitid returns at once if
                // it has exited.
                let untracked_too = !st.scope_own() && st.table.first_public(pid).is_none();
                if nohang || !st.parked_to_claim(pid) {
                    st.reap_pid(pid, untracked_too, true);
                }
            } else if pass_here || !st.passes_run_alone() || (nohang && !st.table.has_records()) {
                // With a handler every SIGCHLD runs a pass; a blocking wait
                // sleeps until one records something.
                st = pass::sweep_settled(st);
            }
            let taken =
                if pid > 0 { st.table.take_pid(pid) } else { st.table.take_any().map_or(Taken::Nothing, Taken::Exit) };
            match taken {
                Taken::Exit(exit) => {
                    events::sync_eventfd(&st);
                    return Ok(Some(exit));
                }
                Taken::Lost => {
                    events::sync_eventfd(&st);
                    return Err(error(libc::ECHILD));
                }
                Taken::Nothing => waitable(&mut st, pid, nohang)?,
            }
        };
        if let Blocker::Claimed { idx, generation } = blocker {
            return reap_claimed(pid, idx, generation).map(Some);
        }
        if nohang {
            match blocker {
                // A kept child that has exited: the keeper is reaping it, so
                // its exit is about to be recorded.
                Blocker::Recorded { seen } if pid > 0 && sys::exited_unreaped(pid) => watcher::sleep(seen, Some(100)),
                _ => return Ok(None),
            }
        } else {
            blocker.block();
            pass_here = matches!(blocker, Blocker::Passes { .. }) && last_look.elapsed() >= HANDLER_LOOK_EVERY;
            if pass_here {
                last_look = Instant::now();
            }
        }
    }
}

/// How often a wait that relies on the handler's passes runs one itself.
const HANDLER_LOOK_EVERY: Duration = Duration::from_secs(1);

/// How a wait sleeps until the child it waits for may have changed.
enum Blocker {
    /// A dup of the child's pidfd (closed after use) or its pid.
    Child { pidfd: Option<RawFd>, pid: pid_t },
    /// Any child in scope, without a handler: the reap fd. `polling`: a
    /// blocking wait, counted by [`events::add_poller`].
    Any { epfd: RawFd, polling: bool },
    /// Until an exit is recorded (by the keeper or a pass) after the wake
    /// count was `seen`.
    Recorded { seen: u32 },
    /// Any child, where the handler's passes reap every child in scope: as
    /// [`Blocker::Recorded`], but for [`HANDLER_LOOK_EVERY`] at most; then the
    /// wait runs a pass itself, and so on at most that often. The handler may
    /// no longer run (the program blocks SIGCHLD, reads it from a signalfd
    /// or replaced the handler), and a pass also learns which tracked
    /// children a foreign wait took (their pidfds report it).
    Passes { seen: u32 },
    /// A parked child (see `State::track`) under the all-children handler,
    /// whose passes reap it: as [`Blocker::Recorded`], but for a second at
    /// most, after which the wait looks at the child itself (the program may
    /// have blocked or replaced the handler since).
    Parked { seen: u32 },
    /// A kept child this wait has claimed: it reaps it itself
    /// ([`reap_claimed`]).
    Claimed { idx: u32, generation: u32 },
}

impl Blocker {
    fn block(&self) {
        let options = libc::WNOWAIT | libc::__WALL;
        match *self {
            Blocker::Child { pidfd: Some(fd), .. } => {
                let _ = sys::waitid(libc::P_PIDFD, fd as libc::id_t, options);
            }
            Blocker::Child { pidfd: None, pid } => {
                let _ = sys::waitid(libc::P_PID, pid as libc::id_t, options);
            }
            Blocker::Any { epfd, .. } => {
                let mut pfd = libc::pollfd { fd: epfd, events: libc::POLLIN, revents: 0 };
                // SAFETY: pfd is one valid pollfd. The timeout is a backstop in
                // case no watcher thread could be started.
                unsafe { libc::poll(&mut pfd, 1, 1000) };
            }
            Blocker::Recorded { seen } => watcher::sleep(seen, None),
            Blocker::Passes { seen } => watcher::sleep(seen, Some(HANDLER_LOOK_EVERY.as_millis() as u64)),
            Blocker::Parked { seen } => watcher::sleep(seen, Some(1000)),
            Blocker::Claimed { .. } => {}
        }
    }
}

impl Drop for Blocker {
    fn drop(&mut self) {
        match *self {
            Blocker::Child { pidfd: Some(fd), .. } => sys::close(fd),
            Blocker::Any { polling: true, .. } => events::remove_poller(),
            _ => {}
        }
    }
}

/// Whether `pid` (or -1) still names a child in scope that may exit, and how
/// to wait for it. Gate held, nothing deliverable for `pid`, and `pid`'s
/// tracked slots just checked by `reap_pid`.
fn waitable(st: &mut State, pid: pid_t, nohang: bool) -> io::Result<Blocker> {
    let seen = watcher::wake_count();
    if pid == -1 {
        if !st.children_left() {
            // The last poller leaving drains what was kept readable for it.
            events::sync_eventfd(st);
            return Err(error(libc::ECHILD));
        }
        let table = &st.table;
        let only_kept = st.scope_own()
            && table.watched == 0
            && table.remote_armed == 0
            && table.parked_armed == 0
            && table.fallback.is_empty();
        if st.passes_run_alone() {
            return Ok(Blocker::Passes { seen });
        }
        if only_kept {
            return Ok(Blocker::Recorded { seen });
        }
        if !st.fd_wanted && watcher::start().is_ok() {
            st.fd_wanted = true;
            watcher::publish_mode(st);
        }
        // The reap fd turns readable for what this wait may take: remote
        // children's exits, and every exit recorded from now on. Without the
        // watcher, the poll's timeout is the backstop.
        events::sync_eventfd(st);
        if !nohang {
            events::add_poller();
        }
        return Ok(Blocker::Any { epfd: st.epfd, polling: !nohang });
    }
    if let Some(idx) = st.table.first_public(pid) {
        let slot = *st.table.slot(idx);
        if slot.kept && slot.remote && st.handler_active() && !st.scope_own() {
            return Ok(Blocker::Parked { seen });
        }
        if slot.kept {
            // A blocking wait reaps a kept child itself, as waitpid would,
            // unless another wait has claimed it. (The keeper does not watch
            // a remote child: it needs no claim cell.) Not under the
            // all-children handler: its passes look at every exited child,
            // meet the claimed one before its wait has reaped it, and walk
            // all live children again afterwards; measured, that made the
            // next zreap::fork 1.9-3.1x slower with 1,000-10,000 live children.
            if !nohang
                && !slot.claimed
                && (st.scope_own() || !st.handler_active())
                && (slot.remote || keeper::claim(idx, slot.generation))
            {
                st.table.claim(idx);
                st.publish_pass_wanted();
                return Ok(Blocker::Claimed { idx, generation: slot.generation });
            }
            return Ok(Blocker::Recorded { seen });
        }
        let pidfd = (slot.pidfd >= 0).then(|| sys::dup_cloexec(slot.pidfd).ok()).flatten();
        return Ok(Blocker::Child { pidfd, pid });
    }
    if st.scope_own() {
        return Err(error(libc::ECHILD));
    }
    // An untracked child in the ALL scope: is it ours and still running?
    sys::waitid(libc::P_PID, pid as libc::id_t, libc::WNOHANG | libc::WNOWAIT)?;
    Ok(Blocker::Child { pidfd: None, pid })
}

impl State {
    /// Whether the oldest slot of `pid` is a live parked child that a
    /// blocking wait claims (see [`waitable`]), its registration not
    /// reported yet.
    fn parked_to_claim(&self, pid: pid_t) -> bool {
        let Some(idx) = self.table.first_public(pid) else { return false };
        let slot = self.table.slot(idx);
        self.scope_own() && slot.state == SlotState::Live && slot.parked && slot.armed && !slot.claimed
    }

    /// Whether the handler's passes and the keeper reap every child in scope
    /// without the program's calls: a handler is installed, and no remote
    /// child's exit may wait for the reap fd's reader.
    fn passes_run_alone(&self) -> bool {
        self.handler_active() && self.table.remote_armed == 0
    }
}

/// Reaps kept child `pid` (slot `idx` of `generation`), which this wait has
/// claimed: a blocking `waitid` by pid, as `waitpid(pid)` does, then the exit
/// is recorded and taken in one step. No other thread waits, no keeper hop.
///
/// Waiting by pid is sound here: the child is ours and unreaped, and nothing
/// in the library reaps a claimed child but this wait, so its pid names it
/// until the kernel has looked the pid up at the start of the call (the wait
/// is bound to that process from then on). Only a foreign wait that reaps it
/// first (a steal, which the contract lets win) frees the pid earlier: the
/// wait then finds no such child (`ECHILD`), as `waitpid` would, unless the
/// kernel gave that pid to a new child in the microseconds between the steal
/// and the call, which needs every other pid to have been used in between.
///
/// A child this process traces also reports its ptrace stops to that wait
/// (the first one is then lost to the tracer); after one, the wait goes on
/// on the child's pidfd, which turns readable at its exit only.
fn reap_claimed(pid: pid_t, idx: u32, generation: u32) -> io::Result<Exit> {
    let mut found = sys::waitid(libc::P_PID, pid as libc::id_t, libc::__WALL);
    if let Ok(sys::Waited::NotYet) = found {
        found = reap_traced(pid);
    }
    let mut st = lock();
    let slot = *st.table.slot(idx);
    if slot.generation == generation && slot.claimed && slot.state == SlotState::Live {
        let status = match found {
            Ok(sys::Waited::Exited(_, status)) => Some(status),
            _ => None,
        };
        st.table.finish(idx, status);
        if slot.remote {
            st.release_remote(idx, generation, slot.armed);
        }
    }
    // Other waits for this pid or for any child learn that it is gone; in
    // the all-children scope, the handler's passes stopped at this child, so
    // one runs as the gate is let go.
    watcher::wake();
    if !st.scope_own() && st.handler_active() {
        REAPER.request_again();
    }
    let taken = st.table.take_pid(pid);
    events::sync_eventfd(&st);
    match taken {
        Taken::Exit(exit) => Ok(exit),
        _ => Err(error(libc::ECHILD)),
    }
}

/// Waits for traced child `pid` to exit without taking its ptrace stops,
/// then reaps it (see [`reap_claimed`]).
fn reap_traced(pid: pid_t) -> io::Result<sys::Waited> {
    let Ok(pidfd) = sys::pidfd_open(pid) else {
        // No pidfd to wait on (EMFILE): stops go on being taken.
        loop {
            match sys::waitid(libc::P_PID, pid as libc::id_t, libc::__WALL) {
                Ok(sys::Waited::NotYet) => continue,
                found => return found,
            }
        }
    };
    let mut pfd = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is one valid pollfd.
    while unsafe { libc::poll(&mut pfd, 1, -1) } == -1 && sys::errno() == libc::EINTR {}
    let found = sys::waitid(libc::P_PIDFD, pidfd as libc::id_t, libc::__WALL);
    sys::close(pidfd);
    found
}

/// A non-blocking, close-on-exec fd that is readable while an exit in scope
/// waits for [`reap_all`] (C: `zreap_fd`). The same fd on every call, owned
/// by the library. When no SIGCHLD handler is installed, a watcher thread
/// keeps it readable for every child in scope; `EAGAIN` if it cannot start.
///
/// ```
/// use std::os::fd::AsRawFd;
/// let fd = zreap::reap_fd().unwrap();
/// assert_eq!(fd.as_raw_fd(), zreap::reap_fd().unwrap().as_raw_fd());
/// ```
pub fn reap_fd() -> io::Result<BorrowedFd<'static>> {
    let mut st = lock();
    st.ensure_ready()?;
    // Also when the fd is wanted already: a fork child's watcher may not
    // have started at its first call (RLIMIT_NPROC), which is tried again
    // only once a second there.
    if !st.handler_active() {
        watcher::start()?;
    }
    if !st.fd_wanted {
        st.fd_wanted = true;
        watcher::publish_mode(&st);
        events::sync_eventfd(&st);
    }
    // The keeper's fds are some of the library's fds too: make them all
    // exist from here on (children can be tracked without it).
    keeper::ready(&st);
    // SAFETY: the epoll fd stays open for the life of the process (a forked
    // child gets a fresh one under the same number).
    Ok(unsafe { BorrowedFd::borrow_raw(st.epfd) })
}
