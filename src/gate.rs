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
//! `reaper` take it before `fork()`, and the child finds it free (its flags lie
//! on a page a fork gives the child zero-filled, or the child resets them).
//! The flags live apart from the value ([`Flags`]), so that the words every
//! fork writes can sit on a page of their own.
//!
//! Signal context: [`Gate::run_or_defer`] runs in the SIGCHLD handler and
//! [`Gate::reset_in_child`] in a forked child; both only touch atomics.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::SeqCst};

/// The atomic flag a gate is made of: std's in the library, loom's in the
/// model checks (`RUSTFLAGS="--cfg zreap_loom"`, see `scripts/loom.sh`).
pub trait Flag {
    fn load(&self, order: Ordering) -> bool;
    fn store(&self, value: bool, order: Ordering);
    fn swap(&self, value: bool, order: Ordering) -> bool;
    fn compare_exchange(&self, current: bool, new: bool, success: Ordering, failure: Ordering) -> Result<bool, bool>;
    /// Lets other threads run while waiting for the gate.
    fn yield_now();
}

impl Flag for AtomicBool {
    fn load(&self, order: Ordering) -> bool {
        self.load(order)
    }
    fn store(&self, value: bool, order: Ordering) {
        self.store(value, order)
    }
    fn swap(&self, value: bool, order: Ordering) -> bool {
        self.swap(value, order)
    }
    fn compare_exchange(&self, current: bool, new: bool, success: Ordering, failure: Ordering) -> Result<bool, bool> {
        self.compare_exchange(current, new, success, failure)
    }
    /// A raw `sched_yield`: the keeper's bare thread waits for the gate too.
    fn yield_now() {
        crate::sys::bare::sched_yield()
    }
}

/// The two words a gate is made of: held, and work asked for meanwhile.
/// All-zero is a free gate with nothing asked for.
pub struct Flags<F = AtomicBool> {
    busy: F,
    again: F,
}

impl Flags {
    /// The flags of a free gate with nothing asked for.
    pub const fn new() -> Self {
        Flags { busy: AtomicBool::new(false), again: AtomicBool::new(false) }
    }
}

pub struct Gate<T, F: 'static = AtomicBool> {
    flags: &'static Flags<F>,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through the gate, which gives one thread
// at a time exclusive access.
unsafe impl<T: Send, F: Sync> Sync for Gate<T, F> {}

impl<T> Gate<T> {
    /// A gate over `value` made of `flags`, which no other gate may use.
    pub const fn new(flags: &'static Flags, value: T) -> Self {
        Gate { flags, value: UnsafeCell::new(value) }
    }
}

impl<T, F: Flag + 'static> Gate<T, F> {
    fn try_acquire(&self) -> bool {
        self.flags.busy.compare_exchange(false, true, SeqCst, SeqCst).is_ok()
    }

    /// Takes the gate, yielding while another thread holds it. Not for signal
    /// handlers. On release, deferred work (see [`Gate::run_or_defer`]) runs with
    /// the `deferred` function given here.
    pub fn lock(&self, deferred: fn(&mut T)) -> GateGuard<'_, T, F> {
        while !self.try_acquire() {
            F::yield_now();
        }
        GateGuard { gate: self, deferred }
    }

    /// Async-signal-safe: runs `work` now if the gate is free, otherwise leaves
    /// it to the holder, which runs it before releasing. Never blocks.
    pub fn run_or_defer(&self, work: fn(&mut T)) {
        self.flags.again.store(true, SeqCst);
        loop {
            if !self.try_acquire() {
                return;
            }
            while self.flags.again.swap(false, SeqCst) {
                // SAFETY: the gate is held, so no one else touches the value.
                work(unsafe { &mut *self.value.get() });
            }
            self.flags.busy.store(false, SeqCst);
            if !self.flags.again.load(SeqCst) {
                return;
            }
        }
    }

    /// Asks the current or next holder to run the deferred work once more.
    pub fn request_again(&self) {
        self.flags.again.store(true, SeqCst);
    }

    /// Takes the gate for a `fork()`: the caller must call [`Gate::release_raw`]
    /// (parent) or [`Gate::reset_in_child`] (child) afterwards.
    pub fn acquire_raw(&self) {
        while !self.try_acquire() {
            F::yield_now();
        }
    }

    /// Takes the gate if it is free, without waiting: true when taken (then as
    /// for [`Gate::acquire_raw`]).
    pub fn try_acquire_raw(&self) -> bool {
        self.try_acquire()
    }

    /// Releases a gate taken with [`Gate::acquire_raw`] without running the
    /// deferred work, for a thread that must not run it. Returns whether work
    /// is pending: it is left for the next holder to run.
    ///
    /// # Safety
    /// As for [`Gate::release_raw`].
    pub unsafe fn release_leaving_deferred(&self) -> bool {
        self.flags.busy.store(false, SeqCst);
        self.flags.again.load(SeqCst)
    }

    /// Releases a gate taken with [`Gate::acquire_raw`] without running the
    /// deferred work, for a thread that must not run it, and takes that work
    /// over: returns whether some was asked for, which no other holder then
    /// runs. The caller must make sure a thread that may run it does, if it is
    /// still needed.
    ///
    /// # Safety
    /// As for [`Gate::release_raw`].
    pub unsafe fn release_taking_deferred(&self) -> bool {
        self.flags.busy.store(false, SeqCst);
        self.flags.again.swap(false, SeqCst)
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
        self.flags.again.store(false, SeqCst);
        self.flags.busy.store(false, SeqCst);
    }
}

pub struct GateGuard<'a, T, F: Flag + 'static = AtomicBool> {
    gate: &'a Gate<T, F>,
    deferred: fn(&mut T),
}

impl<T, F: Flag + 'static> std::ops::Deref for GateGuard<'_, T, F> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the gate is held.
        unsafe { &*self.gate.value.get() }
    }
}

impl<T, F: Flag + 'static> std::ops::DerefMut for GateGuard<'_, T, F> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the gate is held, and &mut self makes the access unique.
        unsafe { &mut *self.gate.value.get() }
    }
}

impl<T, F: Flag + 'static> Drop for GateGuard<'_, T, F> {
    fn drop(&mut self) {
        let gate = self.gate;
        loop {
            while gate.flags.again.swap(false, SeqCst) {
                // SAFETY: the gate is still held by this guard.
                (self.deferred)(unsafe { &mut *gate.value.get() });
            }
            gate.flags.busy.store(false, SeqCst);
            if !gate.flags.again.load(SeqCst) || !gate.try_acquire() {
                return;
            }
        }
    }
}

/// Model checks of the gate (run by `scripts/loom.sh`).
///
/// A signal handler interrupts a thread rather than running beside it; loom
/// models threads, so the handler here is a thread of its own. That allows
/// strictly more interleavings than the real thing, and the handler path
/// (`run_or_defer`) still never spins: a model where it waited for the
/// gate would not terminate.
#[cfg(all(test, zreap_loom))]
mod loom_model {
    use super::{Flag, Flags, Gate, Ordering};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{fence, AtomicBool, AtomicUsize};
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::Ordering::SeqCst;

    /// Two known loom 0.7 defects would raise false alarms here, so each
    /// access is made as follows:
    /// - loom regards a SeqCst access as AcqRel (its README, "Unsupported
    ///   features"): a load may then miss a store that SeqCst orders before
    ///   it. A SeqCst fence on each side restores the single order; when all
    ///   atomics are SeqCst, as here, that is exactly sequential consistency.
    /// - loom can slip a plain store between the read and the write of a
    ///   concurrent read-modify-write (tokio-rs/loom#254, fix pending in
    ///   #391), so a swap of `again` may lose a `true` just stored. Stores are
    ///   made as swaps, which loom keeps atomic.
    fn seq_cst<R>(order: Ordering, access: impl FnOnce() -> R) -> R {
        let fenced = order == Ordering::SeqCst;
        if fenced {
            fence(Ordering::SeqCst);
        }
        let result = access();
        if fenced {
            fence(Ordering::SeqCst);
        }
        result
    }

    impl Flag for AtomicBool {
        fn load(&self, order: Ordering) -> bool {
            seq_cst(order, || self.load(order))
        }
        fn store(&self, value: bool, order: Ordering) {
            seq_cst(order, || self.swap(value, order));
        }
        fn swap(&self, value: bool, order: Ordering) -> bool {
            seq_cst(order, || self.swap(value, order))
        }
        fn compare_exchange(
            &self,
            current: bool,
            new: bool,
            success: Ordering,
            failure: Ordering,
        ) -> Result<bool, bool> {
            seq_cst(success, || self.compare_exchange(current, new, success, failure))
        }
        fn yield_now() {
            loom::thread::yield_now()
        }
    }

    struct State {
        /// Touched by every holder: loom fails on an access not ordered
        /// after the previous one, so two holders at once are caught.
        data: UnsafeCell<usize>,
        /// Events announced to the gate (a child exited) that no `work` has
        /// taken yet: each `run_or_defer` follows one increment.
        pending: Arc<AtomicUsize>,
    }

    type ModelGate = Gate<State, AtomicBool>;

    fn gate(pending: &Arc<AtomicUsize>) -> Arc<ModelGate> {
        let state = State { data: UnsafeCell::new(0), pending: pending.clone() };
        // Leaked: a model's gate outlives nothing but the model, and the
        // flags of a gate are 'static.
        let flags = Box::leak(Box::new(Flags { busy: AtomicBool::new(false), again: AtomicBool::new(false) }));
        Arc::new(Gate { flags, value: std::cell::UnsafeCell::new(state) })
    }

    /// The handler's (and the deferred) work: takes every pending event.
    fn work(state: &mut State) {
        state.data.with_mut(increment);
        state.pending.swap(0, SeqCst);
    }

    fn increment(d: *mut usize) {
        // SAFETY: loom's cell checks that this access is exclusive.
        unsafe { *d += 1 };
    }

    /// A SIGCHLD: an event, then the handler's call.
    fn signal(gate: &Arc<ModelGate>, pending: &Arc<AtomicUsize>) -> thread::JoinHandle<()> {
        let (gate, pending) = (gate.clone(), pending.clone());
        thread::spawn(move || {
            pending.fetch_add(1, SeqCst);
            gate.run_or_defer(work);
        })
    }

    /// Ordinary code: takes the gate, changes the state (maybe asking for
    /// one more run), releases it.
    fn consumer(gate: &Arc<ModelGate>, request_again: bool) -> thread::JoinHandle<()> {
        let gate = gate.clone();
        thread::spawn(move || {
            let guard = gate.lock(work);
            guard.data.with_mut(increment);
            if request_again {
                // As install() does for children that exited before it.
                guard.pending.fetch_add(1, SeqCst);
                gate.request_again();
            }
            drop(guard);
        })
    }

    /// After the threads: no event left untaken, the gate free and idle.
    fn check_quiet(gate: &ModelGate, pending: &AtomicUsize) {
        assert_eq!(pending.load(SeqCst), 0, "a deferred run was lost");
        assert!(!gate.flags.busy.load(SeqCst), "the gate was left held");
        assert!(!gate.flags.again.load(SeqCst), "a request was left behind");
    }

    /// Runs `f` in every interleaving with at most `preemptions` preemptions
    /// (`LOOM_MAX_PREEMPTIONS` overrides). With two threads spinning for the
    /// gate, loom's search explodes one step past the bound given here.
    fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = builder.preemption_bound.or(Some(preemptions));
        builder.check(f);
    }

    #[test]
    fn loom_gate_handler_consumer_fork() {
        model(2, || {
            let pending = Arc::new(AtomicUsize::new(0));
            let gate = gate(&pending);
            let threads = [signal(&gate, &pending), consumer(&gate, false)];
            // This thread is fork(): prepare handler, then the parent's.
            gate.acquire_raw();
            // SAFETY: the gate is held since acquire_raw.
            unsafe { gate.value_mut() }.data.with_mut(increment);
            // SAFETY: this thread took the gate with acquire_raw above.
            unsafe { gate.release_raw(work) };
            threads.into_iter().for_each(|t| t.join().unwrap());
            check_quiet(&gate, &pending);
        });
    }

    #[test]
    fn loom_gate_handler_two_consumers() {
        model(1, || {
            let pending = Arc::new(AtomicUsize::new(0));
            let gate = gate(&pending);
            let threads = [signal(&gate, &pending), consumer(&gate, false), consumer(&gate, true)];
            threads.into_iter().for_each(|t| t.join().unwrap());
            check_quiet(&gate, &pending);
        });
    }

    #[test]
    fn loom_gate_two_signals_consumer() {
        model(3, || {
            let pending = Arc::new(AtomicUsize::new(0));
            let gate = gate(&pending);
            let threads = [signal(&gate, &pending), signal(&gate, &pending), consumer(&gate, false)];
            threads.into_iter().for_each(|t| t.join().unwrap());
            check_quiet(&gate, &pending);
        });
    }
}
