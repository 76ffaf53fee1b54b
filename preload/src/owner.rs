//! Which process the shim's state belongs to.
//!
//! Three kinds of child start with the shim's state of their parent:
//! - a child of `fork()` (or `_Fork()`) has a copy of it, with the exits the
//!   shim stored for the parent's children;
//! - a vfork child (`vfork`, `posix_spawn`, Python's `_posixsubprocess`)
//!   shares its parent's very memory until it execs: it must never write it;
//! - a raw `clone(SIGCHLD)` child has a copy that nothing updated for it.
//!
//! Only the first kind takes the state over, and it does so at its first call
//! into the shim, not in a fork handler: a child that only execs (most of them)
//! then runs no shim code at all. A fork handler would cost each such child
//! two page faults, the shim's code page and the page it writes, about 5 % of
//! a fork + exec + wait of a small program. glibc's `fork()` and `_Fork()`
//! make the child with `CLONE_CHILD_CLEARTID`, so the kernel holds a thread-id
//! address for it (`PR_GET_TID_ADDRESS`); vfork children and raw clones have
//! none. Where the kernel cannot say (it answers `PR_GET_TID_ADDRESS` only
//! with `CONFIG_CHECKPOINT_RESTORE`) or every child needs its parent-death
//! signal armed at once, the fork handler takes the state over instead
//! ([`take_over_in_fork_handler`]).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use zreap::sys::bare;

/// The process the shim's state belongs to.
static OWNER: AtomicI32 = AtomicI32::new(0);
/// The process taking the state over (see [`take_over`]).
static TAKER: AtomicI32 = AtomicI32::new(0);
/// True when forked children take the state over at their first call.
static AT_FIRST_CALL: AtomicBool = AtomicBool::new(false);

/// Makes the calling process the owner, at start-up. `fork_handler_needed`:
/// every forked child needs the shim at once (a parent-death signal to arm).
/// Returns true when the fork handler must take the state over in each child
/// (it is needed, or the kernel cannot tell a forked child from the others).
pub fn start(fork_handler_needed: bool) -> bool {
    OWNER.store(bare::getpid(), SeqCst);
    let at_first_call = !fork_handler_needed && made_by_fork_or_thread();
    AT_FIRST_CALL.store(at_first_call, SeqCst);
    !at_first_call
}

/// In the child of fork(), from the shim's fork handler: takes the state
/// over. Async-signal-safe.
pub fn take_over_in_fork_handler() {
    forget_parent_state();
    OWNER.store(bare::getpid(), SeqCst);
}

/// What a forked child drops of its parent's state: the stored exits were the
/// parent's children's, and the parent's other threads are not here.
/// Async-signal-safe.
fn forget_parent_state() {
    crate::chld::forget_other_threads();
    crate::store::STORE.clear();
}

/// Does process `me` own the shim's state? A forked child that has not yet
/// taken it over does so now. Async-signal-safe.
pub fn owned_by(me: libc::pid_t) -> bool {
    OWNER.load(SeqCst) == me || take_over(me)
}

/// Did glibc's fork(), its pthread_create or its start-up make the calling
/// thread (the kernel holds a thread-id address for it)? Async-signal-safe;
/// keeps errno (the program's calls go on to libc after this).
fn made_by_fork_or_thread() -> bool {
    bare::tid_address().is_some_and(|address| address != 0)
}

/// In a process that does not own the state: takes it over if fork() made the
/// process, once, even with several threads (or a signal handler) at it.
/// Async-signal-safe.
#[cold]
fn take_over(me: libc::pid_t) -> bool {
    if !AT_FIRST_CALL.load(SeqCst) || !made_by_fork_or_thread() {
        return false;
    }
    // With signals blocked no handler on this thread can wait below for this
    // thread's own take-over.
    zreap::sys::with_all_signals_blocked(|| {
        let taker = TAKER.load(SeqCst);
        if taker != me && TAKER.compare_exchange(taker, me, SeqCst, SeqCst).is_ok() {
            forget_parent_state();
            OWNER.store(me, SeqCst);
        }
    });
    // Another thread of this process took it: wait until it is done.
    while OWNER.load(SeqCst) != me {
        bare::sched_yield();
    }
    true
}
