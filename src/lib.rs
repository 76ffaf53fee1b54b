//! zreap ends zombie processes on Linux.
//!
//! A child that exits stays a zombie until its parent reaps it. zreap gives a
//! program one correct way to do that: a SIGCHLD handler that loops (signals
//! do not queue) and is async-signal-safe ([`install`]), exactly-once delivery
//! of every exit ([`reap_all`], [`wait`], [`wait_any`]), an fd for event loops
//! ([`reap_fd`]), tracked children that cost nothing to copy ([`Command`],
//! [`spawn`], [`fork`]), parent-death signals that hold, and a careful double
//! fork ([`daemonize`]).
//!
//! ```
//! use zreap::{Command, InstallFlags};
//! zreap::install(InstallFlags::OWN).unwrap();
//! let mut child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
//! assert_eq!(child.wait().unwrap().code(), Some(7));
//! ```
//!
//! The same functions are exported with a C ABI by the `zreap-capi` crate
//! (`libzreap.so`, `include/zreap.h`).
//!
//! Layers, each using only those before it: [`sys`] (raw async-signal-safe
//! system calls), `signal`, `atfork` (the one owner of fork handling), `gate`,
//! `stats`, `reaper`, `spawn`, `daemon`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod atfork;
mod daemon;
mod gate;
mod reaper;
mod signal;
mod spawn;
mod stats;
pub mod sys;

pub use daemon::{daemon_ready, daemonize, DaemonFlags, DaemonOptions, Daemonized};
pub use reaper::{
    install, reap_all, reap_fd, stats, try_wait, try_wait_any, uninstall, wait, wait_any, Exit, InstallFlags,
    UNTRACKED_CAPACITY,
};
pub use signal::{ParseSignalError, Signal};
pub use spawn::{fork, spawn, Child, Command, ForkResult, SpawnFlags, SpawnOptions};
pub use stats::Stats;

/// The library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
