//! Starting tracked children: [`spawn`] (clone with CLONE_VM|CLONE_VFORK, so
//! the parent's memory is never copied), [`fork`], and the [`Command`] builder.
//!
//! Layers: [`path`] (the `$PATH` search), [`child`] (the cloned child and the
//! clone itself), [`service`] (the long-lived thread that clones children
//! with a parent-death signal), then this API.

mod child;
mod command;
mod path;
mod service;

pub use command::{Child, Command};

use crate::reaper::Creation;
use crate::{sys, Signal};
use bitflags::bitflags;
use libc::{c_char, c_int, pid_t};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

bitflags! {
    /// Flags for [`SpawnOptions::flags`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SpawnFlags: u32 {
        /// Look the program up in `$PATH` when it has no '/' (C: `ZSPAWN_SEARCH_PATH`).
        const SEARCH_PATH = 0x1;
        /// The child starts a new session (C: `ZSPAWN_SETSID`).
        const SETSID = 0x2;
        /// The child starts a new process group (C: `ZSPAWN_SETPGROUP`).
        const SETPGROUP = 0x4;
    }
}

/// How to start a child with [`spawn`] or [`fork`]. `Default` inherits
/// everything. [`Command`] builds these for you.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpawnOptions<'a> {
    /// Session, process group, `$PATH` search.
    pub flags: SpawnFlags,
    /// Signal the child gets when this process dies (not merely the thread
    /// that called `spawn`).
    pub pdeathsig: Option<Signal>,
    /// Working directory of the child; None inherits.
    pub cwd: Option<&'a CStr>,
    /// Put on fd 0 in the child; None inherits.
    pub stdin: Option<BorrowedFd<'a>>,
    /// Put on fd 1 in the child; None inherits.
    pub stdout: Option<BorrowedFd<'a>>,
    /// Put on fd 2 in the child; None inherits.
    pub stderr: Option<BorrowedFd<'a>>,
}

/// Where [`fork`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkResult {
    /// In the child.
    Child,
    /// In the parent: the child's pid.
    Parent(pid_t),
}

/// A validated spawn, borrowing the caller's arrays.
struct SpawnRequest<'a> {
    /// Paths to try in order (one unless searching $PATH).
    candidates: Vec<CString>,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: SpawnFlags,
    pdeathsig: c_int,
    cwd: Option<&'a CStr>,
    fds: [c_int; 3],
}

/// Starts a program as a tracked child (C: `zspawn`).
///
/// `args` is the full argv (its first element is the program name the child
/// sees); `env` None passes the current environment. The parent's memory is not
/// copied, so the cost does not grow with the parent's size. If the program
/// cannot be started, the error is the child's errno (`ENOENT`, `EACCES`,
/// `ENOEXEC`, a failed `chdir` ...) and no child is left; `ENAMETOOLONG` for a
/// path longer than `PATH_MAX`.
///
/// ```
/// let prog = c"/bin/sh";
/// let args = [prog, c"-c", c"exit 4"];
/// let pid = zreap::spawn(prog, &args, None, &zreap::SpawnOptions::default()).unwrap();
/// assert_eq!(zreap::wait(pid).unwrap().status.code(), Some(4));
/// ```
pub fn spawn<A: AsRef<CStr>>(
    path: &CStr,
    args: &[A],
    env: Option<&[&CStr]>,
    options: &SpawnOptions<'_>,
) -> io::Result<pid_t> {
    let argv: Vec<*const c_char> =
        args.iter().map(|a| a.as_ref().as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Option<Vec<*const c_char>> =
        env.map(|e| e.iter().map(|v| v.as_ptr()).chain(std::iter::once(std::ptr::null())).collect());
    let fd = |f: Option<BorrowedFd<'_>>| f.map_or(-1, |fd| fd.as_raw_fd());
    let bytes = path.to_bytes();
    if bytes.len() >= libc::PATH_MAX as usize {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    if bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let candidates = if options.flags.contains(SpawnFlags::SEARCH_PATH) && !bytes.contains(&b'/') {
        path::path_candidates(bytes)
    } else {
        vec![path.to_owned()]
    };
    let request = SpawnRequest {
        candidates,
        argv: argv.as_ptr(),
        envp: envp.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
        flags: options.flags,
        pdeathsig: options.pdeathsig.map_or(0, Signal::as_raw),
        cwd: options.cwd,
        fds: [fd(options.stdin), fd(options.stdout), fd(options.stderr)],
    };
    // With a parent-death signal the clone happens on the service thread,
    // which lives as long as the process (even the main thread may end
    // first, with pthread_exit).
    if request.pdeathsig != 0 {
        service::spawn_from_service(&request)
    } else {
        child::spawn_here(&request)
    }
}

/// `fork()` that tracks the child (C: `zfork`). Only `flags` (SETSID,
/// SETPGROUP) and `pdeathsig` of `options` apply.
///
/// The parent-death signal is armed in the child before this returns there,
/// race-free. It fires when the process that called `fork` dies *or when the
/// thread that called it exits*: the kernel ties PR_SET_PDEATHSIG to the
/// forking thread, and a fork cannot be moved to another thread. Call it from a
/// thread that lives as long as the process when that matters.
///
/// ```
/// use zreap::ForkResult;
/// // SAFETY: the child only calls _exit.
/// match unsafe { zreap::fork(&zreap::SpawnOptions::default()) }.unwrap() {
///     ForkResult::Child => unsafe { libc::_exit(6) },
///     ForkResult::Parent(pid) => assert_eq!(zreap::wait(pid).unwrap().status.code(), Some(6)),
/// }
/// ```
///
/// # Safety
/// As for `fork()` in a multi-threaded program: in the child, only
/// async-signal-safe functions until `exec` or `_exit` (the zreap API is usable).
pub unsafe fn fork(options: &SpawnOptions<'_>) -> io::Result<ForkResult> {
    let flags = options.flags;
    let pdeathsig = options.pdeathsig.map_or(0, Signal::as_raw);
    // No pass may reap the child before it is registered.
    let creation = Creation::begin()?;
    // Needed only to arm a parent-death signal.
    // SAFETY: getpid cannot fail.
    let parent_pid = if pdeathsig != 0 { unsafe { libc::getpid() } } else { 0 };
    // SAFETY: the child below only makes async-signal-safe system calls before
    // returning to its caller, who is bound by this function's contract.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            creation.in_child();
            // SAFETY: plain system calls; a fresh fork child is never a group leader.
            unsafe {
                if flags.contains(SpawnFlags::SETSID) {
                    libc::setsid();
                } else if flags.contains(SpawnFlags::SETPGROUP) {
                    libc::setpgid(0, 0);
                }
            }
            sys::arm_pdeathsig(pdeathsig, parent_pid);
            Ok(ForkResult::Child)
        }
        pid => {
            creation.track(pid, sys::pidfd_open(pid).ok());
            Ok(ForkResult::Parent(pid))
        }
    }
}
