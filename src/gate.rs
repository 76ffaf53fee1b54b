//! The gate: exclusive access to the reaper's state that a signal handler can
//! ask for without ever waiting.
//!
//! Ordinary code takes the gate with [`Gate::lock`], which spins (yielding) while
//! another thread holds it. The SIGCHLD handler calls [`Gate::run_or_defer`]: if
//! the gate is free it runs the work itself; if not, it leaves a note and returns
//! at once, and whoever holds the gate runs the work before letting go. So the
//! handler never blocks, and no run it asked for is lost.
//!
//! The gate is not a lock a forked child can inherit held: the fork handlers in
//! `reaper` take it before `fork()` and reset it in the child.
//!
//! Signal context: [`Gate::run_or_defer`] runs in the SIGCHLD handler and
//! [`Gate::reset_in_child`] in a forked child; both only touch atomics.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

pub struct Gate<T> {
    busy: AtomicBool,
    again: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through the gate, which gives one thread
// at a time exclusive access.
unsafe impl<T: Send> Sync for Gate<T> {}

impl<T> Gate<T> {
    pub const fn new(value: T) -> Self {
        Gate { busy: AtomicBool::new(false), again: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    fn try_acquire(&self) -> bool {
        self.busy.compare_exchange(false, true, SeqCst, SeqCst).is_ok()
    }

    /// Takes the gate, yielding while another thread holds it. Not for signal
    /// handlers. On release, deferred work (see [`Gate::run_or_defer`]) runs with
    /// the `deferred` function given here.
    pub fn lock(&self, deferred: fn(&mut T)) -> GateGuard<'_, T> {
        while !self.try_acquire() {
            std::thread::yield_now();
        }
        GateGuard { gate: self, deferred }
    }

    /// Async-signal-safe: runs `work` now if the gate is free, otherwise leaves
    /// it to the holder, which runs it before releasing. Never blocks.
    pub fn run_or_defer(&self, work: fn(&mut T)) {
        self.again.store(true, SeqCst);
        loop {
            if !self.try_acquire() {
                return;
            }
            while self.again.swap(false, SeqCst) {
                // SAFETY: the gate is held, so no one else touches the value.
                work(unsafe { &mut *self.value.get() });
            }
            self.busy.store(false, SeqCst);
            if !self.again.load(SeqCst) {
                return;
            }
        }
    }

    /// Asks the current or next holder to run the deferred work once more.
    pub fn request_again(&self) {
        self.again.store(true, SeqCst);
    }

    /// Takes the gate for a `fork()`: the caller must call [`Gate::release_raw`]
    /// (parent) or [`Gate::reset_in_child`] (child) afterwards.
    pub fn acquire_raw(&self) {
        while !self.try_acquire() {
            std::thread::yield_now();
        }
    }

    /// The state behind a gate acquired with [`Gate::acquire_raw`].
    ///
    /// # Safety
    /// The caller must hold the gate (acquired with `acquire_raw` and not yet
    /// released) and must not keep the reference past the release.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn value_mut(&self) -> &mut T {
        // SAFETY: the caller holds the gate, per this function's contract.
        unsafe { &mut *self.value.get() }
    }

    /// Releases a gate taken with [`Gate::acquire_raw`], running deferred work first.
    ///
    /// # Safety
    /// The calling thread must hold the gate through [`Gate::acquire_raw`]
    /// (releasing a gate someone else holds breaks their exclusive access).
    pub unsafe fn release_raw(&self, deferred: fn(&mut T)) {
        drop(GateGuard { gate: self, deferred });
    }

    /// In a forked child: frees the gate and forgets deferred work.
    /// Async-signal-safe (post-fork code: two atomic stores).
    ///
    /// # Safety
    /// Only in the child of a `fork()` made while the gate was held (by the
    /// fork handler), where no other thread exists to be holding it.
    pub unsafe fn reset_in_child(&self) {
        self.again.store(false, SeqCst);
        self.busy.store(false, SeqCst);
    }
}

pub struct GateGuard<'a, T> {
    gate: &'a Gate<T>,
    deferred: fn(&mut T),
}

impl<T> std::ops::Deref for GateGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the gate is held.
        unsafe { &*self.gate.value.get() }
    }
}

impl<T> std::ops::DerefMut for GateGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the gate is held, and &mut self makes the access unique.
        unsafe { &mut *self.gate.value.get() }
    }
}

impl<T> Drop for GateGuard<'_, T> {
    fn drop(&mut self) {
        let gate = self.gate;
        loop {
            while gate.again.swap(false, SeqCst) {
                // SAFETY: the gate is still held by this guard.
                (self.deferred)(unsafe { &mut *gate.value.get() });
            }
            gate.busy.store(false, SeqCst);
            if !gate.again.load(SeqCst) || !gate.try_acquire() {
                return;
            }
        }
    }
}
