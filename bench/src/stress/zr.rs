//! The only place the stress command calls zreap's Rust API. Errors are plain
//! errno values (`i32`), so a change of the library's error type only touches
//! the `errno` function below.

use libc::{c_int, pid_t};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// `ZREAP_OWN`, `ZREAP_SUBREAPER`, `ZREAP_NO_HANDLER`.
pub const OWN: u32 = 0x1;
pub const SUBREAPER: u32 = 0x2;
pub const NO_HANDLER: u32 = 0x4;

type Res<T> = Result<T, i32>;

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

pub fn install(flags: u32) -> Res<()> {
    zreap::install(zreap::InstallFlags::from_bits(flags).ok_or(libc::EINVAL)?).map_err(errno)
}

/// `zwait(pid, nohang)` (pid -1: any): `Ok(None)` means "not yet" (only with `nohang`).
pub fn wait(pid: pid_t, nohang: bool) -> Res<Option<(pid_t, c_int)>> {
    let exit = match (pid, nohang) {
        (-1, false) => zreap::wait_any().map(Some),
        (-1, true) => zreap::try_wait_any(),
        (pid, false) => zreap::wait(pid).map(Some),
        (pid, true) => zreap::try_wait(pid),
    };
    exit.map(|e| e.map(|e| (e.pid, e.wstatus()))).map_err(errno)
}

/// `zreap_all`: every undelivered exit as (pid, status).
pub fn reap_all() -> Res<Vec<(pid_t, c_int)>> {
    let mut exits = Vec::new();
    zreap::reap_all(|e| exits.push((e.pid, e.wstatus()))).map_err(errno)?;
    Ok(exits)
}

pub fn reap_fd() -> Res<RawFd> {
    zreap::reap_fd().map(|fd| fd.as_raw_fd()).map_err(errno)
}

/// `zspawn(argv[0], argv, NULL, opts)` with a parent-death signal (0: none)
/// and an optional stdin (an open fd).
pub fn spawn(argv: &[CString], pdeathsig: c_int, stdin: Option<RawFd>) -> Res<pid_t> {
    // SAFETY: the callers pass an fd they keep open for the call.
    let stdin = stdin.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
    let pdeathsig = if pdeathsig == 0 { None } else { Some(zreap::Signal::new(pdeathsig).ok_or(libc::EINVAL)?) };
    let options = zreap::SpawnOptions { pdeathsig, stdin, ..zreap::SpawnOptions::default() };
    zreap::spawn(&argv[0], argv, None, &options).map_err(errno)
}

/// `zfork(NULL)`: 0 in the child, the child's pid in the parent.
///
/// # Safety
/// As for `fork()`: in a multi-threaded caller the child may only make
/// async-signal-safe calls until it execs or `_exit`s.
pub unsafe fn fork() -> Res<pid_t> {
    // SAFETY: the caller keeps the child async-signal-safe.
    match unsafe { zreap::fork(&zreap::SpawnOptions::default()) } {
        Ok(zreap::ForkResult::Child) => Ok(0),
        Ok(zreap::ForkResult::Parent(child)) => Ok(child),
        Err(e) => Err(errno(e)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub reaped: u64,
    pub reported: u64,
    pub dropped: u64,
    pub tracked: u64,
}

pub fn stats() -> Stats {
    let s = zreap::stats();
    Stats { reaped: s.reaped, reported: s.reported, dropped: s.dropped, tracked: s.tracked }
}

/// Where `daemonize` returned.
pub enum Daemonized {
    Daemon,
    /// In the caller, with `ZDAEMON_RETURN` only.
    Caller(pid_t),
}

/// `zdaemonize` with a pidfile; `wait_ready`: ZDAEMON_WAIT_READY, `ret`:
/// ZDAEMON_RETURN.
///
/// # Safety
/// As for `fork()`: other threads of the caller do not exist in the daemon.
pub unsafe fn daemonize(pidfile: &CStr, wait_ready: bool, ret: bool) -> Res<Daemonized> {
    let mut flags = zreap::DaemonFlags::empty();
    flags.set(zreap::DaemonFlags::WAIT_READY, wait_ready);
    flags.set(zreap::DaemonFlags::RETURN, ret);
    let options = zreap::DaemonOptions { flags, pidfile: Some(pidfile.to_owned()), ..zreap::DaemonOptions::new() };
    // SAFETY: the caller's contract.
    match unsafe { zreap::daemonize(&options) } {
        Ok(zreap::Daemonized::Daemon) => Ok(Daemonized::Daemon),
        Ok(zreap::Daemonized::Caller { daemon }) => Ok(Daemonized::Caller(daemon)),
        Err(e) => Err(errno(e)),
    }
}

pub fn daemon_ready() -> Res<()> {
    zreap::daemon_ready(0).map_err(errno)
}
