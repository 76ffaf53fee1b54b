//! zreap ends zombie processes on Linux.
//!
//! A child that exits stays a zombie until its parent reaps it. zreap gives a
//! program one correct way to do that: a SIGCHLD handler that loops (signals
//! do not queue) and is async-signal-safe ([`install`]), exactly-once delivery
//! of every exit ([`reap_all`], [`wait`]), an fd for event loops ([`reap_fd`]),
//! tracked children that cost nothing to copy ([`spawn`], [`fork`]) and
//! parent-death signals that hold.
//!
//! The same functions are exported with a C ABI (`include/zreap.h`); see the
//! README for the C conventions.
//!
//! ```
//! use std::ffi::CString;
//! zreap::install(zreap::InstallFlags::OWN).unwrap();
//! let sh = CString::new("/bin/sh").unwrap();
//! let args = [sh.clone(), CString::new("-c").unwrap(), CString::new("exit 7").unwrap()];
//! let pid = zreap::spawn(&sh, &args, None, &zreap::SpawnOptions::default()).unwrap();
//! let exit = zreap::wait(pid, false).unwrap().unwrap();
//! assert_eq!(libc::WEXITSTATUS(exit.status), 7);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod daemon;
pub mod ffi;
mod gate;
mod handler;
mod pdeath;
mod reaper;
mod spawn;
mod stats;
mod sys;

pub use daemon::{daemon_ready, daemonize, DaemonFlags, DaemonOptions, Daemonized};
pub use reaper::{install, reap_all, reap_fd, uninstall, wait, Exit, InstallFlags, UNTRACKED_CAPACITY};
pub use spawn::{fork, spawn, SpawnFlags, SpawnOptions};
pub use stats::{stats, Stats};

/// The library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// [`VERSION`] as a C string, for `zreap_version`.
pub(crate) const VERSION_C: &std::ffi::CStr =
    match std::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("version has a NUL byte"),
    };
