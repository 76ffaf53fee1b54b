//! Exits the shim reaped on the program's behalf, kept until one of the
//! program's wait calls asks for them.
//!
//! Lock-free and allocation-free: the signal handler inserts, and wait calls
//! (also from signal handlers: the classic handler calls wait()) take. Each
//! entry moves EMPTY -> WRITING -> FULL -> TAKING -> EMPTY with compare-and-swap.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};

/// How many exits wait at most; past that the oldest is dropped (and logged).
pub const CAPACITY: usize = 4096;

const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const FULL: u32 = 2;
const TAKING: u32 = 3;

struct Entry {
    state: AtomicU32,
    pid: AtomicI32,
    pgid: AtomicI32,
    seq: AtomicU64,
    info: UnsafeCell<libc::siginfo_t>,
}

// SAFETY: `info` is only written in state WRITING and read in state TAKING,
// each held by one thread at a time through compare-and-swap.
unsafe impl Sync for Entry {}

impl Entry {
    const fn empty() -> Entry {
        Entry {
            state: AtomicU32::new(EMPTY),
            pid: AtomicI32::new(0),
            pgid: AtomicI32::new(0),
            seq: AtomicU64::new(0),
            // SAFETY: siginfo_t is plain data; all-zero is a valid value.
            info: UnsafeCell::new(unsafe { std::mem::zeroed() }),
        }
    }
}

pub struct Store {
    entries: [Entry; CAPACITY],
    /// Entries in state FULL (a fast path for the common empty case).
    count: AtomicUsize,
    /// One past the highest entry ever used: scans stop there.
    high: AtomicUsize,
    next_seq: AtomicU64,
}

/// Which exits a wait call accepts.
#[derive(Clone, Copy)]
pub enum Want {
    Any,
    Pid(libc::pid_t),
    Group(libc::pid_t),
}

impl Want {
    pub fn accepts(self, pid: libc::pid_t, pgid: libc::pid_t) -> bool {
        match self {
            Want::Any => true,
            Want::Pid(p) => p == pid,
            Want::Group(g) => g == pgid,
        }
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

    pub fn is_empty(&self) -> bool {
        self.count.load(SeqCst) == 0
    }

    /// Keeps an exit. When full, drops the oldest and returns its pid.
    /// Async-signal-safe.
    pub fn put(&self, info: &libc::siginfo_t, pgid: libc::pid_t) -> Option<libc::pid_t> {
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
                entry.pid.store(unsafe { info.si_pid() }, SeqCst);
                entry.pgid.store(pgid, SeqCst);
                entry.seq.store(self.next_seq.fetch_add(1, SeqCst), SeqCst);
                // SAFETY: state WRITING gives this thread sole access to info.
                unsafe { *entry.info.get() = *info };
                entry.state.store(FULL, SeqCst);
                self.count.fetch_add(1, SeqCst);
                return dropped;
            }
            match self.take_oldest(Want::Any, true) {
                Some(old) => {
                    // SAFETY: a stored SIGCHLD siginfo.
                    dropped = Some(unsafe { old.si_pid() });
                }
                None => return dropped,
            }
        }
    }

    /// Takes (or with `peek`, copies) the oldest exit that `want` accepts.
    /// Async-signal-safe.
    pub fn take(&self, want: Want, peek: bool) -> Option<libc::siginfo_t> {
        if self.is_empty() {
            return None;
        }
        self.take_oldest(want, !peek)
    }

    fn take_oldest(&self, want: Want, remove: bool) -> Option<libc::siginfo_t> {
        loop {
            let oldest = self.entries[..self.high.load(SeqCst)]
                .iter()
                .filter(|e| e.state.load(SeqCst) == FULL && want.accepts(e.pid.load(SeqCst), e.pgid.load(SeqCst)))
                .min_by_key(|e| e.seq.load(SeqCst))?;
            if oldest.state.compare_exchange(FULL, TAKING, SeqCst, SeqCst).is_err() {
                continue;
            }
            // SAFETY: state TAKING gives this thread sole access to info.
            let info = unsafe { *oldest.info.get() };
            if remove {
                self.count.fetch_sub(1, SeqCst);
                oldest.state.store(EMPTY, SeqCst);
            } else {
                oldest.state.store(FULL, SeqCst);
            }
            return Some(info);
        }
    }

    /// Forgets everything (in a forked child: these were the parent's
    /// children). Async-signal-safe; the child has one thread.
    pub fn clear(&self) {
        // Entries past `high` were never used: leave their pages untouched.
        for e in &self.entries[..self.high.load(SeqCst)] {
            e.state.store(EMPTY, SeqCst);
        }
        self.count.store(0, SeqCst);
        self.high.store(0, SeqCst);
    }
}
