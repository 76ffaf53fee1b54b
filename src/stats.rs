//! Process-wide counters, kept in atomics so the signal handler can update them.
//!
//! Signal context: every method of `Counters` runs in the handler or a forked
//! child: relaxed atomic adds and stores only.

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

/// The counters live on the reaper's page of hot words (`reaper::Hot`).
pub(crate) static COUNTERS: &Counters = &crate::reaper::HOT.counters;

impl Counters {
    pub(crate) const fn new() -> Counters {
        Counters {
            reaped: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            tracked: AtomicU64::new(0),
        }
    }

    /// Async-signal-safe, like every method here: relaxed atomics only (the
    /// counters order nothing; they are read as a snapshot).
    pub fn add_reaped(&self, n: i64) {
        Self::add(&self.reaped, n);
    }

    pub fn add_reported(&self, n: i64) {
        Self::add(&self.reported, n);
    }

    pub fn add_dropped(&self, n: i64) {
        Self::add(&self.dropped, n);
    }

    pub fn add_tracked(&self, n: i64) {
        Self::add(&self.tracked, n);
    }

    fn add(counter: &AtomicU64, n: i64) {
        counter.fetch_add(n as u64, Relaxed);
    }

    /// Zeroes every counter (in a forked child).
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
