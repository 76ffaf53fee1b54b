//! Exits the shim reaped on the program's behalf, kept until one of the
//! program's wait calls asks for them.
//!
//! Lock-free and allocation-free: the signal handler inserts, and wait calls
//! (also from signal handlers: the classic handler calls wait()) take. Each
//! entry moves EMPTY -> WRITING -> FULL -> TAKING -> EMPTY with compare-and-swap.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering, Ordering::SeqCst};

/// How many exits wait at most; past that the oldest is dropped (and logged).
pub const CAPACITY: usize = 4096;

const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const FULL: u32 = 2;
const TAKING: u32 = 3;

/// An atomic integer as the store uses it.
pub trait Atomic<V>: Sync {
    fn load(&self, order: Ordering) -> V;
    fn store(&self, value: V, order: Ordering);
    fn compare_exchange(&self, current: V, new: V, success: Ordering, failure: Ordering) -> Result<V, V>;
    fn fetch_add(&self, value: V, order: Ordering) -> V;
    fn fetch_sub(&self, value: V, order: Ordering) -> V;
    fn fetch_max(&self, value: V, order: Ordering) -> V;
}

/// An exit the shim reaped: the child's siginfo, and its resource usage for
/// `wait3`/`wait4`.
#[derive(Clone, Copy)]
pub struct StoredExit {
    pub info: libc::siginfo_t,
    pub usage: libc::rusage,
}

/// Where an entry keeps its exit.
pub trait ExitCell {
    /// # Safety
    /// The caller has sole access to the cell (its entry is WRITING).
    unsafe fn write(&self, exit: &StoredExit);
    /// # Safety
    /// No one writes the cell meanwhile (its entry is TAKING).
    unsafe fn read(&self) -> StoredExit;
}

/// The atomics a store is made of: std's in the shim, loom's in the model
/// checks (`RUSTFLAGS="--cfg zreap_loom"`, see `scripts/loom.sh`).
pub trait Atomics {
    type U32: Atomic<u32>;
    type I32: Atomic<i32>;
    type U64: Atomic<u64>;
    type Usize: Atomic<usize>;
    type Exit: ExitCell;
}

macro_rules! atomic {
    ($($atomic:ident: $int:ty),*) => {
        $(impl Atomic<$int> for $atomic {
            fn load(&self, order: Ordering) -> $int {
                self.load(order)
            }
            fn store(&self, value: $int, order: Ordering) {
                self.store(value, order)
            }
            fn compare_exchange(&self, current: $int, new: $int, success: Ordering, failure: Ordering) -> Result<$int, $int> {
                self.compare_exchange(current, new, success, failure)
            }
            fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                self.fetch_add(value, order)
            }
            fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                self.fetch_sub(value, order)
            }
            fn fetch_max(&self, value: $int, order: Ordering) -> $int {
                self.fetch_max(value, order)
            }
        })*
    };
}

atomic!(AtomicU32: u32, AtomicI32: i32, AtomicU64: u64, AtomicUsize: usize);

/// The shim's atomics.
pub struct Std;

impl Atomics for Std {
    type U32 = AtomicU32;
    type I32 = AtomicI32;
    type U64 = AtomicU64;
    type Usize = AtomicUsize;
    type Exit = UnsafeCell<StoredExit>;
}

impl ExitCell for UnsafeCell<StoredExit> {
    unsafe fn write(&self, exit: &StoredExit) {
        // SAFETY: the caller has sole access, per this function's contract.
        unsafe { *self.get() = *exit };
    }
    unsafe fn read(&self) -> StoredExit {
        // SAFETY: no one writes meanwhile, per this function's contract.
        unsafe { *self.get() }
    }
}

struct Entry<A: Atomics> {
    state: A::U32,
    pid: A::I32,
    pgid: A::I32,
    seq: A::U64,
    /// The reap clock (see [`Store::put`]) when the reap began.
    reaped: A::U64,
    /// One more than the sequence number of the exit marked stale here: a
    /// newer child was given its pid ([`Store::supersede`]). Marks only ever
    /// grow (an entry's refills have higher sequence numbers), so a mark
    /// needs no hold on the entry and a late one never hides a newer exit.
    stale: A::U64,
    exit: A::Exit,
}

// SAFETY: `exit` is only written in state WRITING and read in state TAKING,
// each held by one thread at a time through compare-and-swap.
unsafe impl<A: Atomics> Sync for Entry<A> {}

impl Entry<Std> {
    const fn empty() -> Self {
        Entry {
            state: AtomicU32::new(EMPTY),
            pid: AtomicI32::new(0),
            pgid: AtomicI32::new(0),
            seq: AtomicU64::new(0),
            reaped: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            // SAFETY: siginfo_t and rusage are plain data; all-zero is valid.
            exit: UnsafeCell::new(unsafe { std::mem::zeroed() }),
        }
    }
}

pub struct Store<A: Atomics = Std, const N: usize = CAPACITY> {
    entries: [Entry<A>; N],
    /// At least the number of entries in state FULL (a fast path for the
    /// common empty case).
    count: A::Usize,
    /// One past the highest entry ever used: scans stop there.
    high: A::Usize,
    next_seq: A::U64,
}

/// Which exits a wait call accepts. `Pid` accepts only the newest process
/// that had the pid: not an exit [`Store::supersede`] marked stale.
#[derive(Clone, Copy)]
pub enum Want {
    Any,
    Pid(libc::pid_t),
    Group(libc::pid_t),
    /// An exit of this pid stored with a sequence number at least this (a
    /// later process with the same pid: see `pidfd`). Stale exits too: a
    /// pidfd names its own process, superseded or not.
    PidSince(libc::pid_t, u64),
}

impl Want {
    pub fn accepts(self, pid: libc::pid_t, pgid: libc::pid_t) -> bool {
        match self {
            Want::Any => true,
            Want::Pid(p) | Want::PidSince(p, _) => p == pid,
            Want::Group(g) => g == pgid,
        }
    }

    /// [`Want::accepts`], for an entry stored with sequence number `seq`.
    fn accepts_entry(self, pid: libc::pid_t, pgid: libc::pid_t, seq: u64) -> bool {
        self.accepts(pid, pgid) && !matches!(self, Want::PidSince(_, floor) if seq < floor)
    }
}

/// The process-wide store (in .bss: untouched pages cost no memory).
pub static STORE: Store = Store::new();

impl Store {
    const fn new() -> Self {
        Store {
            entries: [const { Entry::empty() }; CAPACITY],
            count: AtomicUsize::new(0),
            high: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
        }
    }
}

impl<A: Atomics, const N: usize> Store<A, N> {
    pub fn is_empty(&self) -> bool {
        self.count.load(SeqCst) == 0
    }

    /// Keeps an exit, whose reap began at `reaped` on a clock that counts
    /// the shim's reaps (taken before the reap, so before the kernel could
    /// give the pid to another process). When full, drops the oldest and
    /// returns its pid. Async-signal-safe.
    pub fn put(&self, exit: &StoredExit, pgid: libc::pid_t, reaped: u64) -> Option<libc::pid_t> {
        let mut dropped = None;
        loop {
            let free = self
                .entries
                .iter()
                .enumerate()
                .find(|(_, e)| e.state.compare_exchange(EMPTY, WRITING, SeqCst, SeqCst).is_ok());
            if let Some((index, entry)) = free {
                self.high.fetch_max(index + 1, SeqCst);
                // SAFETY: si_pid is valid for a SIGCHLD siginfo.
                entry.pid.store(unsafe { exit.info.si_pid() }, SeqCst);
                entry.pgid.store(pgid, SeqCst);
                entry.reaped.store(reaped, SeqCst);
                entry.seq.store(self.next_seq.fetch_add(1, SeqCst), SeqCst);
                // SAFETY: state WRITING gives this thread sole access to exit.
                unsafe { entry.exit.write(exit) };
                // Counted before it is FULL, so count never falls below the
                // number of FULL entries and is_empty() never hides one.
                self.count.fetch_add(1, SeqCst);
                entry.state.store(FULL, SeqCst);
                return dropped;
            }
            match self.take_oldest(Want::Any, true) {
                Some((old, _)) => {
                    // SAFETY: a stored SIGCHLD siginfo.
                    dropped = Some(unsafe { old.info.si_pid() });
                }
                None => return dropped,
            }
        }
    }

    /// Takes (or with `peek`, copies) the oldest exit that `want` accepts.
    /// Async-signal-safe.
    pub fn take(&self, want: Want, peek: bool) -> Option<StoredExit> {
        self.take_with_seq(want, peek).map(|(exit, _)| exit)
    }

    /// [`Store::take`], with the sequence number the exit was stored with.
    /// Async-signal-safe.
    pub fn take_with_seq(&self, want: Want, peek: bool) -> Option<(StoredExit, u64)> {
        if self.is_empty() {
            return None;
        }
        self.take_oldest(want, !peek)
    }

    /// The sequence number the next exit stored will have (exits stored
    /// before this call have lower ones).
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(SeqCst)
    }

    /// The sequence number of the newest exit of `pid` stored.
    pub fn newest_seq(&self, pid: libc::pid_t) -> Option<u64> {
        self.entries[..self.high.load(SeqCst)]
            .iter()
            .filter_map(|e| {
                let seq = e.seq.load(SeqCst);
                (e.state.load(SeqCst) == FULL && e.pid.load(SeqCst) == pid && e.seq.load(SeqCst) == seq).then_some(seq)
            })
            .max()
    }

    fn take_oldest(&self, want: Want, remove: bool) -> Option<(StoredExit, u64)> {
        let fresh_only = matches!(want, Want::Pid(_));
        let wanted = |e: &Entry<A>, seq: u64| {
            want.accepts_entry(e.pid.load(SeqCst), e.pgid.load(SeqCst), seq)
                && !(fresh_only && e.stale.load(SeqCst) == seq + 1)
        };
        loop {
            let (oldest, seq) = self.entries[..self.high.load(SeqCst)]
                .iter()
                .filter_map(|e| {
                    // seq first: an exit put here after this load has another seq.
                    let seq = e.seq.load(SeqCst);
                    (e.state.load(SeqCst) == FULL && wanted(e, seq)).then_some((e, seq))
                })
                .min_by_key(|&(_, seq)| seq)?;
            if oldest.state.compare_exchange(FULL, TAKING, SeqCst, SeqCst).is_err() {
                continue;
            }
            if oldest.seq.load(SeqCst) != seq || !wanted(oldest, seq) {
                // Taken and refilled since the scan (another exit, maybe not
                // one `want` accepts), or marked stale meanwhile.
                oldest.state.store(FULL, SeqCst);
                continue;
            }
            // SAFETY: state TAKING gives this thread sole access to exit.
            let exit = unsafe { oldest.exit.read() };
            if remove {
                self.count.fetch_sub(1, SeqCst);
                oldest.state.store(EMPTY, SeqCst);
            } else {
                oldest.state.store(FULL, SeqCst);
            }
            return Some((exit, seq));
        }
    }

    /// A new child of the program got `pid`: every stored exit of that pid
    /// whose reap began before `created` (the reap clock read before the
    /// child was made) belonged to an older process, and is left to waits
    /// for any child or a process group from now on. Returns true if it
    /// kept an exit of `pid` whose reap began at `created` or later: the
    /// child's own, or an older process's that the kernel freed while the
    /// child was being made (see [`Store::supersede_below`]).
    /// Async-signal-safe.
    pub fn supersede(&self, pid: libc::pid_t, created: u64) -> bool {
        self.mark_stale(pid, |reaped, _| reaped < created)
    }

    /// Marks stale every exit of `pid` stored with a sequence number below
    /// `bound`: the kernel had a child with that pid after they were stored,
    /// a newer process. Async-signal-safe.
    pub fn supersede_below(&self, pid: libc::pid_t, bound: u64) {
        self.mark_stale(pid, |_, seq| seq < bound);
    }

    /// After [`Store::supersede`] kept exits of `pid` and the kernel no longer
    /// has the new child: of the exits of `pid` whose reap began at
    /// `created` or later, only the one whose reap began last can be the
    /// child's own (its reap began once it existed, after the older
    /// process's reap had freed the pid); the others are marked stale.
    /// Async-signal-safe.
    pub fn supersede_all_but_newest(&self, pid: libc::pid_t, created: u64) {
        let newest = std::cell::Cell::new(None);
        self.mark_stale(pid, |reaped, _| {
            if reaped >= created && newest.get().is_none_or(|n| reaped > n) {
                newest.set(Some(reaped));
            }
            false
        });
        if let Some(newest) = newest.get() {
            self.mark_stale(pid, |reaped, _| reaped >= created && reaped < newest);
        }
    }

    /// Marks stale the exits of `pid` that `stale(reaped, seq)` says are of
    /// an older process; true if it kept one. Holds no entry (a peek or take
    /// in another thread, or in the code this call interrupted, never makes
    /// it skip one): it reads an entry's fields between two looks at its
    /// state and sequence number, which a refill changes.
    fn mark_stale(&self, pid: libc::pid_t, stale: impl Fn(u64, u64) -> bool) -> bool {
        if self.is_empty() {
            return false;
        }
        let held = |e: &Entry<A>| matches!(e.state.load(SeqCst), FULL | TAKING);
        let mut kept = false;
        for e in &self.entries[..self.high.load(SeqCst)] {
            if e.pid.load(SeqCst) != pid {
                continue;
            }
            let seq = e.seq.load(SeqCst);
            if !held(e) {
                continue;
            }
            let (owner, reaped) = (e.pid.load(SeqCst), e.reaped.load(SeqCst));
            if !held(e) || e.seq.load(SeqCst) != seq || owner != pid {
                continue;
            }
            if stale(reaped, seq) {
                e.stale.fetch_max(seq + 1, SeqCst);
            } else {
                kept = true;
            }
        }
        kept
    }

    /// Forgets everything (in a forked child: these were the parent's
    /// children). Async-signal-safe; the child has one thread. Only what is
    /// not empty already is written (each page a forked child writes costs
    /// it a copy); `high` stays, a bound on the entries ever used.
    pub fn clear(&self) {
        for e in &self.entries[..self.high.load(SeqCst)] {
            if e.state.load(SeqCst) != EMPTY {
                e.state.store(EMPTY, SeqCst);
            }
        }
        if self.count.load(SeqCst) != 0 {
            self.count.store(0, SeqCst);
        }
    }
}

/// Model checks of the store (run by `scripts/loom.sh`): loom's atomics and
/// cell in a store of two entries; producers and consumers as threads.
#[cfg(all(test, zreap_loom))]
mod loom_model {
    use super::{Atomic, Atomics, Entry, ExitCell, Store, StoredExit, Want, EMPTY};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, AtomicUsize};
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::Ordering;

    /// Each access works around two loom 0.7 defects that raise false
    /// alarms (see `gate::loom_model` in the zreap crate for the details):
    /// SeqCst accesses are fenced on both sides, because loom treats them as
    /// AcqRel, and stores are made as swaps, because loom can slip a store
    /// into a concurrent read-modify-write (tokio-rs/loom#254).
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

    macro_rules! loom_atomic {
        ($($atomic:ident: $int:ty),*) => {
            $(impl Atomic<$int> for $atomic {
                fn load(&self, order: Ordering) -> $int {
                    seq_cst(order, || self.load(order))
                }
                fn store(&self, value: $int, order: Ordering) {
                    seq_cst(order, || self.swap(value, order));
                }
                fn compare_exchange(&self, current: $int, new: $int, success: Ordering, failure: Ordering) -> Result<$int, $int> {
                    seq_cst(success, || self.compare_exchange(current, new, success, failure))
                }
                fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                    seq_cst(order, || self.fetch_add(value, order))
                }
                fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                    seq_cst(order, || self.fetch_sub(value, order))
                }
                fn fetch_max(&self, value: $int, order: Ordering) -> $int {
                    seq_cst(order, || self.fetch_max(value, order))
                }
            })*
        };
    }

    loom_atomic!(AtomicU32: u32, AtomicI32: i32, AtomicU64: u64, AtomicUsize: usize);

    struct Loom;

    impl Atomics for Loom {
        type U32 = AtomicU32;
        type I32 = AtomicI32;
        type U64 = AtomicU64;
        type Usize = AtomicUsize;
        type Exit = UnsafeCell<StoredExit>;
    }

    impl ExitCell for UnsafeCell<StoredExit> {
        unsafe fn write(&self, exit: &StoredExit) {
            // SAFETY: the caller has sole access; loom checks it.
            self.with_mut(|p| unsafe { *p = *exit });
        }
        unsafe fn read(&self) -> StoredExit {
            // SAFETY: no one writes meanwhile; loom checks it.
            self.with(|p| unsafe { *p })
        }
    }

    /// A store shared by the model's threads.
    struct Shared(Store<Loom, 2>);

    // SAFETY: siginfo_t's and rusage's fields are plain data here; the store itself is Sync.
    unsafe impl Send for Shared {}

    fn shared() -> Arc<Shared> {
        let entry = || Entry::<Loom> {
            state: AtomicU32::new(EMPTY),
            pid: AtomicI32::new(0),
            pgid: AtomicI32::new(0),
            seq: AtomicU64::new(0),
            reaped: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            // SAFETY: siginfo_t and rusage are plain data; all-zero is valid.
            exit: UnsafeCell::new(unsafe { std::mem::zeroed() }),
        };
        Arc::new(Shared(Store {
            entries: std::array::from_fn(|_| entry()),
            count: AtomicUsize::new(0),
            high: AtomicUsize::new(0),
            next_seq: AtomicU64::new(0),
        }))
    }

    /// An exit: (pid, status). The status tells exits of one pid apart.
    type Exit = (i32, i32);

    /// `exit` as stored: its SIGCHLD siginfo (the kernel's layout of its
    /// first fields), no resource usage.
    fn stored((pid, status): Exit) -> StoredExit {
        #[repr(C)]
        struct Chld {
            signo: i32,
            errno: i32,
            code: i32,
            #[cfg(target_pointer_width = "64")]
            pad: i32,
            pid: i32,
            uid: u32,
            status: i32,
        }
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let chld = Chld {
            signo: libc::SIGCHLD,
            errno: 0,
            code: libc::CLD_EXITED,
            #[cfg(target_pointer_width = "64")]
            pad: 0,
            pid,
            uid: 0,
            status,
        };
        // SAFETY: Chld is smaller than siginfo_t and info is writable.
        unsafe { std::ptr::write(&mut info as *mut libc::siginfo_t as *mut Chld, chld) };
        // SAFETY: rusage is plain data; all-zero is a valid value.
        let stored = StoredExit { info, usage: unsafe { std::mem::zeroed() } };
        assert_eq!(exit_of(&stored), (pid, status));
        stored
    }

    fn exit_of(stored: &StoredExit) -> Exit {
        // SAFETY: a SIGCHLD siginfo.
        unsafe { (stored.info.si_pid(), stored.info.si_status()) }
    }

    fn put(store: &Shared, exit: Exit) {
        assert_eq!(store.0.put(&stored(exit), exit.0, 0), None, "nothing is dropped below capacity");
    }

    fn take(store: &Shared, want: Want) -> Option<Exit> {
        let exit = store.0.take(want, false).map(|stored| exit_of(&stored));
        if let Some((pid, _)) = exit {
            assert!(want.accepts(pid, pid), "a wait got an exit it did not ask for");
        }
        exit
    }

    fn producer(store: &Arc<Shared>, exit: Exit) -> thread::JoinHandle<Option<Exit>> {
        let store = store.clone();
        thread::spawn(move || {
            put(&store, exit);
            None
        })
    }

    fn consumer(store: &Arc<Shared>, want: Want) -> thread::JoinHandle<Option<Exit>> {
        let store = store.clone();
        thread::spawn(move || take(&store, want))
    }

    /// Joins the threads, then checks that every exit put came out exactly
    /// once: taken by one consumer, or still in the store.
    fn check_exactly_once(store: &Shared, threads: Vec<thread::JoinHandle<Option<Exit>>>, put: &[Exit]) {
        let mut out: Vec<Exit> = threads.into_iter().filter_map(|t| t.join().unwrap()).collect();
        out.extend(std::iter::from_fn(|| take(store, Want::Any)));
        out.sort();
        let mut put = put.to_vec();
        put.sort();
        assert_eq!(out, put, "an exit was lost or delivered twice");
        assert!(store.0.is_empty());
    }

    /// Runs `f` in every interleaving with at most `preemptions` preemptions
    /// (`LOOM_MAX_PREEMPTIONS` overrides): one more costs 10-20 times the
    /// run time.
    fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = builder.preemption_bound.or(Some(preemptions));
        builder.check(f);
    }

    #[test]
    fn loom_store_two_producers_pid_and_any() {
        model(2, || {
            let store = shared();
            let threads = vec![
                producer(&store, (5, 1)),
                producer(&store, (7, 2)),
                consumer(&store, Want::Pid(5)),
                consumer(&store, Want::Any),
            ];
            check_exactly_once(&store, threads, &[(5, 1), (7, 2)]);
        });
    }

    #[test]
    fn loom_store_two_waiters_for_one_pid() {
        model(3, || {
            let store = shared();
            put(&store, (5, 1));
            let threads =
                vec![consumer(&store, Want::Pid(5)), consumer(&store, Want::Pid(5)), producer(&store, (7, 2))];
            check_exactly_once(&store, threads, &[(5, 1), (7, 2)]);
        });
    }

    /// A newer child takes the pid while a wait for that pid and a wait for
    /// any child run: the stale exit is delivered exactly once, and never to
    /// the pid's wait once marked.
    #[test]
    fn loom_store_superseded_exit() {
        model(3, || {
            let store = shared();
            put(&store, (5, 1));
            let marker = {
                let store = store.clone();
                thread::spawn(move || {
                    store.0.supersede(5, 1);
                    None
                })
            };
            let threads = vec![marker, consumer(&store, Want::Pid(5)), consumer(&store, Want::Any)];
            check_exactly_once(&store, threads, &[(5, 1)]);
            put(&store, (5, 2));
            store.0.supersede(5, 1);
            assert_eq!(take(&store, Want::Pid(5)), None, "a superseded exit answered a wait for its pid");
            assert_eq!(take(&store, Want::Any), Some((5, 2)));
        });
    }

    /// A newer child takes the pid while another thread peeks at the exit
    /// (a kill(), pidfd_open() or WNOWAIT wait holds the entry for a
    /// moment): the exit is marked stale all the same.
    #[test]
    fn loom_store_supersede_beside_a_peek() {
        model(3, || {
            let store = shared();
            put(&store, (5, 1));
            let peeker = {
                let store = store.clone();
                thread::spawn(move || store.0.take(Want::Pid(5), true).map(|stored| exit_of(&stored)))
            };
            store.0.supersede(5, 1);
            let _ = peeker.join().unwrap();
            assert_eq!(
                store.0.take(Want::Pid(5), true).map(|stored| exit_of(&stored)),
                None,
                "a peek hid the exit from supersede"
            );
            assert_eq!(take(&store, Want::Any), Some((5, 1)));
        });
    }

    /// An exit stored before a wait began is found by it, whatever other
    /// threads put and take meanwhile, if no one else may take it.
    #[test]
    fn loom_store_stored_exit_is_found() {
        model(4, || {
            let store = shared();
            put(&store, (5, 1));
            let threads = vec![producer(&store, (7, 2)), consumer(&store, Want::Pid(7))];
            assert_eq!(take(&store, Want::Pid(5)), Some((5, 1)), "a wait missed a stored exit");
            check_exactly_once(&store, threads, &[(7, 2)]);
        });
    }
}
