//! The watcher thread: keeps the reap fd readable for exits no handler sees
//! (`NO_HANDLER`, or no install at all), and reaps in place of a handler that
//! can never run (SIGCHLD blocked in every thread). It only looks (WNOWAIT)
//! unless it reaps in the handler's place.
//!
//! Signal context: [`wake`] is called from the pass and is async-signal-safe
//! (an atomic add and a futex wake).

use super::{events, lock, pass, State};
use crate::sys::{self, Waited};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};

// SeqCst throughout: these words pair a mode with futex sleeps across threads,
// run a handful of times per exit, and the total order keeps the reasoning
// simple (a store of the mode is seen before the wake that follows it).

/// Bumped whenever something a waiter may care about changed: a pass reaped a
/// child, the configuration changed, a child was made.
static WAKE: &AtomicU32 = &super::FORK_PAGE.wake;
/// What the watcher does; it sleeps on this word while idle.
static MODE: &AtomicU32 = &super::HOT.watcher.mode;
static STARTED: AtomicBool = AtomicBool::new(false);
/// SIGCHLD was blocked in every thread when the handler was installed.
static HANDLER_BLOCKED: AtomicBool = AtomicBool::new(false);

/// This module's words on the reaper's page of hot words ([`super::Hot`]).
/// (Its wake count and sleepers are on the fork page, [`super::ForkPage`].)
pub(super) struct Words {
    mode: AtomicU32,
}

impl Words {
    pub(super) const fn new() -> Words {
        Words { mode: AtomicU32::new(IDLE) }
    }
}

const IDLE: u32 = 0;
/// No handler runs and every child is in scope: watch with waitid(WNOWAIT).
const ALL: u32 = 1;
/// No handler runs, OWN scope, some tracked children have no pidfd: poll them.
const FALLBACK: u32 = 2;
/// A handler is installed but can never run: watch with waitid(WNOWAIT) and
/// run the pass in its place.
const REAP: u32 = 3;

/// Threads asleep on [`WAKE`] (the watcher and blocked waits): a wake with
/// no one asleep costs no system call.
static SLEEPERS: &AtomicU32 = &super::FORK_PAGE.sleepers;

/// Wakes the watcher and every waiter. Async-signal-safe.
pub(super) fn wake() {
    WAKE.fetch_add(1, SeqCst);
    if SLEEPERS.load(SeqCst) > 0 {
        sys::futex_wake_all(WAKE);
    }
}

/// Whether some thread sleeps in [`sleep`]: a wait (or the watcher) that
/// [`wake`] would wake. Async-signal-safe.
pub(super) fn has_sleepers() -> bool {
    SLEEPERS.load(SeqCst) > 0
}

/// The wake count, to hand to [`sleep`] after checking a condition.
pub(super) fn wake_count() -> u32 {
    WAKE.load(SeqCst)
}

/// Sleeps until [`wake`] runs after `seen` was read (at most `timeout_ms`).
pub(super) fn sleep(seen: u32, timeout_ms: Option<u64>) {
    // SeqCst pairs the count with wake()'s: either wake() sees a sleeper, or
    // the futex sees the word changed.
    SLEEPERS.fetch_add(1, SeqCst);
    sys::futex_wait(WAKE, seen, timeout_ms);
    SLEEPERS.fetch_sub(1, SeqCst);
}

/// Records whether the installed handler can never run.
pub(super) fn set_handler_blocked(blocked: bool) {
    HANDLER_BLOCKED.store(blocked, SeqCst);
}

/// Whether the installed handler can never run: this thread runs the passes
/// in its place.
pub(super) fn handler_blocked() -> bool {
    HANDLER_BLOCKED.load(SeqCst)
}

/// Works out what the watcher must do for the current configuration and
/// wakes it. Gate held.
pub(super) fn publish_mode(st: &State) {
    let mode = mode_for(st);
    st.publish_pass_wanted();
    if MODE.swap(mode, SeqCst) != mode {
        sys::futex_wake_all(MODE);
    }
    wake();
}

/// In the child of a plain fork, which keeps its parent's configuration
/// (installation, `fd_wanted`) but not the watcher thread: starts one at the
/// child's first call into the library when the configuration needs it (see
/// `c-tests/reaper_watcher_in_fork_child.c`). Ordinary context, gate held;
/// one atomic load while the watcher runs.
pub(super) fn restart_if_needed(st: &State) {
    if STARTED.load(SeqCst) || mode_for(st) == IDLE {
        return;
    }
    // At RLIMIT_NPROC: one failed clone a second, not one per call.
    let now = coarse_seconds();
    let failed = RESTART_FAILED_AT.load(SeqCst);
    if (failed == 0 || now > failed) && start().is_err() {
        RESTART_FAILED_AT.store(now, SeqCst);
    }
}

/// When [`restart_if_needed`] last failed to start the thread, in
/// [`coarse_seconds`]; 0 for never.
static RESTART_FAILED_AT: AtomicU64 = AtomicU64::new(0);

/// CLOCK_MONOTONIC_COARSE in whole seconds, plus one (never 0).
fn coarse_seconds() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 + 1
}

fn mode_for(st: &State) -> u32 {
    if st.handler_active() {
        if HANDLER_BLOCKED.load(SeqCst) {
            REAP
        } else {
            IDLE
        }
    } else if !st.fd_wanted {
        IDLE
    } else if !st.scope_own() {
        ALL
    } else if !st.table.fallback.is_empty() {
        FALLBACK
    } else {
        IDLE
    }
}

/// Starts the watcher thread unless it runs already. `EAGAIN` (or the cause)
/// when no thread can be started. Ordinary context.
pub(super) fn start() -> io::Result<()> {
    if STARTED.swap(true, SeqCst) {
        return Ok(());
    }
    match std::thread::Builder::new().name("zreap-watcher".into()).spawn(watch) {
        Ok(_) => Ok(()),
        Err(e) => {
            STARTED.store(false, SeqCst);
            Err(e)
        }
    }
}

/// In a forked child the thread does not exist. Async-signal-safe; writes
/// only when there is something to forget (a write copies the page).
pub(super) fn forget_in_child() {
    if STARTED.load(SeqCst) {
        STARTED.store(false, SeqCst);
    }
    if RESTART_FAILED_AT.load(SeqCst) != 0 {
        RESTART_FAILED_AT.store(0, SeqCst);
    }
}

fn watch() {
    sys::block_all_signals_in_this_thread();
    let efd = lock().efd;
    loop {
        let seen = WAKE.load(SeqCst);
        match MODE.load(SeqCst) {
            mode @ (ALL | REAP) => match sys::waitid(libc::P_ALL, 0, libc::WNOWAIT) {
                Ok(Waited::Exited(pid, _)) => {
                    // Under the gate, and only if still unreaped: a reap_all that
                    // ran meanwhile has drained the fd and must leave it drained.
                    {
                        let mut st = lock();
                        if mode == REAP {
                            pass::pass(&mut st);
                        }
                        if sys::exited_unreaped(pid) {
                            events::announce(efd, pid);
                        }
                    }
                    // Wait until someone reaps it before looking again.
                    while MODE.load(SeqCst) == mode && sys::exited_unreaped(pid) {
                        sleep(WAKE.load(SeqCst), Some(100));
                    }
                    events::announced_reaped();
                }
                // No children: fork() wakes us through the fork handlers; a
                // posix_spawn()ed child does not, hence the timeout. A wait
                // outside the library may have taken the last child: waits
                // asleep for any child learn that none is left.
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                    if events::has_pollers() || has_sleepers() {
                        events::sync_eventfd(&lock());
                        wake();
                    }
                    sleep(seen, Some(100));
                }
                _ => sleep(seen, Some(100)),
            },
            FALLBACK => {
                let pids = lock().table.fallback_pids();
                if pids.into_iter().any(sys::exited_unreaped) {
                    events::signal(efd);
                }
                sleep(seen, Some(50));
            }
            // Idle: recorded exits are none of its business.
            mode => sys::futex_wait(MODE, mode, None),
        }
    }
}
