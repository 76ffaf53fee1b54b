//! The one owner of fork handling: registers the `pthread_atfork` handlers
//! once, and calls each concern's hooks in a fixed order (the reaper first,
//! then zdaemonize's readiness, then the spawner service). Concerns register
//! their hooks here before they first need them, so this bottom layer calls
//! nothing above it by name.
//!
//! Post-fork code: [`in_child`] runs in the child of `fork()` and must stay
//! async-signal-safe, as must every child hook: atomics and raw system calls
//! only.
//!
//! A fork does not copy the parent's mappings of the library's code: the
//! child faults each page of it in again as it first runs it, and the parent
//! waiting for that child waits for those faults too. So [`in_child`] and the
//! child hooks a plain fork runs live in one small section of their own,
//! `.zreap_fork_child`: the child of a host's `fork()` maps one page of the
//! library, not one per hook (capi/tests/fork_faults.rs runs
//! c-tests/count_fork_faults.c, which counts them).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The concerns with fork hooks, in the order their hooks run.
#[derive(Clone, Copy)]
pub(crate) enum Concern {
    Reaper = 0,
    Daemon = 1,
    Spawner = 2,
}

const CONCERNS: usize = 3;

/// A hook: `fn()` stored as an address, 0 for none.
struct Hooks {
    prepare: [AtomicUsize; CONCERNS],
    parent: [AtomicUsize; CONCERNS],
    child: [AtomicUsize; CONCERNS],
}

static HOOKS: Hooks = Hooks {
    prepare: [const { AtomicUsize::new(0) }; CONCERNS],
    parent: [const { AtomicUsize::new(0) }; CONCERNS],
    child: [const { AtomicUsize::new(0) }; CONCERNS],
};

static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Sets `concern`'s hooks (None: nothing at that point) and makes sure the
/// atfork handlers are registered. Ordinary context; not under the reaper's
/// gate (a concurrent fork holds glibc's atfork lock while its prepare
/// handler waits for the gate).
pub(crate) fn set_hooks(concern: Concern, prepare: Option<fn()>, parent: Option<fn()>, child: Option<fn()>) {
    let address = |hook: Option<fn()>| hook.map_or(0, |f| f as usize);
    let i = concern as usize;
    // Release: a fork that sees the address sees the hook's code and data.
    HOOKS.prepare[i].store(address(prepare), Ordering::Release);
    HOOKS.parent[i].store(address(parent), Ordering::Release);
    HOOKS.child[i].store(address(child), Ordering::Release);
    if !REGISTERED.load(Ordering::Acquire) && !REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: the three handlers are extern "C" functions with no arguments.
        let rc = unsafe { libc::pthread_atfork(Some(prepare_all), Some(in_parent), Some(in_child)) };
        if rc != 0 {
            REGISTERED.store(false, Ordering::Release);
        }
    }
}

#[inline(always)]
fn run(hooks: &[AtomicUsize; CONCERNS], reverse: bool) {
    let mut order = [0, 1, 2];
    if reverse {
        order.reverse();
    }
    for i in order {
        let address = hooks[i].load(Ordering::Acquire);
        if address != 0 {
            // SAFETY: a non-zero address was stored from an `fn()` in set_hooks.
            let hook: fn() = unsafe { std::mem::transmute::<usize, fn()>(address) };
            hook();
        }
    }
}

/// Prepare handlers run in reverse order, so that the first concern's lock is
/// taken last and released first, as for nested locks.
extern "C" fn prepare_all() {
    run(&HOOKS.prepare, true);
}

extern "C" fn in_parent() {
    run(&HOOKS.parent, false);
}

/// In the child of `fork()`. Async-signal-safe: it only calls child hooks,
/// each async-signal-safe.
#[link_section = ".zreap_fork_child"]
extern "C" fn in_child() {
    run(&HOOKS.child, false);
}
