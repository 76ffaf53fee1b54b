//! Process-wide counters, kept in atomics so the signal handler can update them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the library has done since the process started (or since the fork
/// that made this process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Children reaped by the library.
    pub reaped: u64,
    /// Exits delivered through `reap_all` or `wait`.
    pub reported: u64,
    /// Exits of untracked children dropped from the full buffer.
    pub dropped: u64,
    /// Tracked children alive or not yet delivered.
    pub tracked: u64,
}

pub(crate) struct Counters {
    pub reaped: AtomicU64,
    pub reported: AtomicU64,
    pub dropped: AtomicU64,
    pub tracked: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    reaped: AtomicU64::new(0),
    reported: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    tracked: AtomicU64::new(0),
};

impl Counters {
    /// Async-signal-safe.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Async-signal-safe.
    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Relaxed);
    }

    /// Zeroes every counter (in a forked child). Async-signal-safe.
    pub fn reset(&self) {
        for c in [&self.reaped, &self.reported, &self.dropped, &self.tracked] {
            c.store(0, Relaxed);
        }
    }
}

/// The current counters.
///
/// ```
/// // A fresh process has reaped, dropped and tracked nothing.
/// assert_eq!(zreap::stats(), zreap::Stats::default());
/// ```
pub fn stats() -> Stats {
    Stats {
        reaped: COUNTERS.reaped.load(Relaxed),
        reported: COUNTERS.reported.load(Relaxed),
        dropped: COUNTERS.dropped.load(Relaxed),
        tracked: COUNTERS.tracked.load(Relaxed),
    }
}
