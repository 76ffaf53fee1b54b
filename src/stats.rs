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

    /// The counters as they are now.
    pub fn snapshot(&self) -> Stats {
        Stats {
            reaped: self.reaped.load(Relaxed),
            reported: self.reported.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            tracked: self.tracked.load(Relaxed),
        }
    }
}
