//! `daemonize`: double fork + setsid, with the outcome reported back to the
//! caller's process, a locked pidfile and optional readiness.
//!
//! The caller's process forks a tracked intermediate, which calls setsid() and
//! forks the daemon, then exits; the caller collects the intermediate (through
//! the reaper, so no zombie whether or not a handler is installed) and reads a
//! close-on-exec socket pair until the daemon reports: its pid once set up (or,
//! with `WAIT_READY`, once it calls [`daemon_ready`]), or the errno of the step
//! that failed. EOF means the daemon died before reporting. A subreaper caller
//! adopts a daemon that failed and collects it: at once after a failed setup
//! (the daemon `_exit`s), but after `daemon_ready(err)` only if it ends within
//! [`READY_ERROR_EXIT_MS`] (it may go on running).
//!
//! Post-fork code: between fork and the end of setup only async-signal-safe
//! system calls run (`intermediate`, `pidfile`, and `send_report` and
//! `forget_ready_in_child` here): everything that needs memory (paths, the
//! pidfile's temporary name) is prepared before the first fork.

mod intermediate;
mod pidfile;

use crate::atfork::{self, Concern};
use crate::{reaper, sys};
use bitflags::bitflags;
use libc::{c_int, pid_t};
use std::ffi::{CStr, CString};
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::time::{Duration, Instant};

bitflags! {
    /// Flags for [`DaemonOptions::flags`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DaemonFlags: u32 {
        /// Do not close fds above 2 (C: `ZDAEMON_KEEP_FDS`).
        const KEEP_FDS = 0x1;
        /// Do not point 0, 1 and 2 at /dev/null (C: `ZDAEMON_KEEP_STDIO`).
        const KEEP_STDIO = 0x2;
        /// Do not chdir (C: `ZDAEMON_NO_CHDIR`).
        const NO_CHDIR = 0x4;
        /// The caller's process waits for [`daemon_ready`] (C: `ZDAEMON_WAIT_READY`).
        const WAIT_READY = 0x8;
        /// The caller's process returns instead of exiting (C: `ZDAEMON_RETURN`).
        const RETURN = 0x10;
    }
}

/// How to daemonize. `Default` (and `new`): chdir to "/", umask 0, stdio on
/// /dev/null, every other fd closed, no pidfile, the caller's process exits 0
/// once set up; the same defaults as `zdaemon_options_init`.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// What to keep and whether to wait or return.
    pub flags: DaemonFlags,
    /// Working directory; None: "/".
    pub workdir: Option<CString>,
    /// Pidfile, written atomically and locked while the daemon runs; None: none.
    pub pidfile: Option<CString>,
    /// umask of the daemon; None leaves it as is. Default: Some(0).
    pub umask: Option<u32>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions { flags: DaemonFlags::empty(), workdir: None, pidfile: None, umask: Some(0) }
    }
}

impl DaemonOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Where `daemonize` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemonized {
    /// In the daemon.
    Daemon,
    /// In the caller's process (with `RETURN` only): the daemon's pid.
    Caller {
        /// The daemon's pid.
        daemon: pid_t,
    },
}

/// The report the daemon sends: errno (0 for success), its pid, and 1 when
/// it `_exit`s right after (a failed setup), 0 when it goes on.
#[repr(C)]
#[derive(Clone, Copy)]
struct Report {
    error: c_int,
    pid: pid_t,
    exits: c_int,
}

/// How long a subreaper caller waits for a daemon that reported an error with
/// `daemon_ready` to exit, so as to collect it; a daemon still running then is
/// left to the caller's process, as any orphan it adopts.
const READY_ERROR_EXIT_MS: c_int = 500;

/// The daemon's end of the report socket while it owes a readiness report,
/// and the daemon's pid (a child it forks must not answer for it).
pub(super) static READY_FD: AtomicI32 = AtomicI32::new(-1);
pub(super) static READY_PID: AtomicI32 = AtomicI32::new(0);
/// Everything the forked processes need, prepared before the first fork.
struct Plan {
    flags: DaemonFlags,
    workdir: CString,
    pidfile: Option<CString>,
    umask: Option<libc::mode_t>,
    hup_ignored: bool,
}

/// Double-forks into a daemon (C: `zdaemonize`).
///
/// Returns `Daemonized::Daemon` in the daemon, which is not a session leader,
/// has no controlling terminal and is no child of the caller. The caller's
/// process exits 0 once the daemon is set up (or, with `WAIT_READY`, once it
/// reports ready), and exits 1 after printing one line to stderr when setup
/// fails or the daemon reports an error; with `RETURN` it returns the daemon's
/// pid or the daemon's errno instead (`ECHILD` when the daemon died before
/// reporting). `EINVAL` for unknown flags, a umask outside 0..=0o777 or an empty
/// path, `ENAMETOOLONG` for a path of `PATH_MAX` bytes or more, `ENOENT` for a
/// relative pidfile when the working directory was removed; nothing is forked
/// then. A live daemon holding the pidfile: `EEXIST`.
///
/// ```no_run
/// let mut options = zreap::DaemonOptions::new();
/// options.pidfile = Some(c"/run/echo.pid".to_owned());
/// options.flags = zreap::DaemonFlags::WAIT_READY;
/// // SAFETY: called before any other thread is started.
/// if unsafe { zreap::daemonize(&options) }.unwrap() == zreap::Daemonized::Daemon {
///     // ... bind, listen ...
///     zreap::daemon_ready(0).unwrap(); // now the launching process exits 0
/// }
/// ```
///
/// # Safety
/// As for `fork()`: other threads of the caller do not exist in the daemon.
pub unsafe fn daemonize(options: &DaemonOptions) -> io::Result<Daemonized> {
    let plan = plan(options)?;
    let outcome = run(&plan);
    if plan.flags.contains(DaemonFlags::RETURN) {
        return outcome;
    }
    match outcome {
        Ok(Daemonized::Daemon) => Ok(Daemonized::Daemon),
        Ok(Daemonized::Caller { .. }) => {
            // SAFETY: ends the caller's process as daemon(3) does, without
            // atexit handlers that could disturb the daemon's files.
            unsafe { libc::_exit(0) }
        }
        // writeln!, not eprintln!, which panics when stderr fails (EPIPE with
        // SIGPIPE ignored): the caller's process exits 1 whatever stderr is.
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
            let _ = writeln!(io::stderr(), "zdaemonize: the daemon exited before it reported");
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "zdaemonize: the daemon could not start: {e}");
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
}

fn plan(options: &DaemonOptions) -> io::Result<Plan> {
    let flags = options.flags;
    let umask = match options.umask {
        None => None,
        Some(m) if m <= 0o777 => Some(m as libc::mode_t),
        Some(_) => return Err(error(libc::EINVAL)),
    };
    let nonempty = |p: &CString| if p.as_bytes().is_empty() { Err(error(libc::EINVAL)) } else { Ok(()) };
    let workdir = options.workdir.clone().unwrap_or_else(|| c"/".to_owned());
    nonempty(&workdir)?;
    if workdir.as_bytes().len() >= libc::PATH_MAX as usize {
        return Err(error(libc::ENAMETOOLONG));
    }
    let pidfile = options.pidfile.as_ref().map(|p| nonempty(p).and_then(|()| absolute(p))).transpose()?;
    if pidfile.as_ref().is_some_and(|p| p.as_bytes().len() + pidfile::TMP_SUFFIX_MAX >= libc::PATH_MAX as usize) {
        return Err(error(libc::ENAMETOOLONG));
    }
    // SAFETY: querying a disposition only.
    let hup_ignored = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old);
        old.sa_sigaction == libc::SIG_IGN
    };
    Ok(Plan { flags, workdir, pidfile, umask, hup_ignored })
}

/// A relative pidfile is taken relative to the caller's working directory;
/// getcwd's error (ENOENT once that directory was removed) if it has no name.
fn absolute(path: &CStr) -> io::Result<CString> {
    if path.to_bytes().starts_with(b"/") {
        return Ok(path.to_owned());
    }
    let mut full = std::env::current_dir()?.into_os_string().into_encoded_bytes();
    full.push(b'/');
    full.extend_from_slice(path.to_bytes());
    CString::new(full).map_err(|_| error(libc::EINVAL))
}

fn run(plan: &Plan) -> io::Result<Daemonized> {
    atfork::set_hooks(Concern::Daemon, None, None, Some(forget_ready_in_child));
    if let Some(p) = &plan.pidfile {
        pidfile::register_pidfile_removal(p);
    }
    let mut pair = [-1; 2];
    // SAFETY: pair has room for two fds.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let [caller_end, daemon_end] = pair;
    // A caller with 0, 1 or 2 closed gets them here: the daemon points those
    // at /dev/null, which would swallow its report. Move its end above them.
    let daemon_end = if daemon_end <= 2 {
        // SAFETY: F_DUPFD_CLOEXEC only adds an fd to the table.
        let moved = unsafe { libc::fcntl(daemon_end, libc::F_DUPFD_CLOEXEC, 3) };
        let e = io::Error::last_os_error();
        sys::close(daemon_end);
        if moved < 0 {
            sys::close(caller_end);
            return Err(e);
        }
        moved
    } else {
        daemon_end
    };
    // Buffered output would otherwise be written twice.
    // SAFETY: fflush(NULL) flushes every stdio stream.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    // No pass may reap the intermediate before it is registered.
    let creation = match reaper::Creation::begin() {
        Ok(c) => c,
        Err(e) => {
            [caller_end, daemon_end].into_iter().for_each(sys::close);
            return Err(e);
        }
    };
    // No handler may run in the children before they reset dispositions.
    let old_mask = sys::set_raw_sigmask(!0);
    // SAFETY: the child makes only async-signal-safe calls until it returns
    // in the daemon, whose caller is bound by daemonize's safety contract.
    match unsafe { libc::fork() } {
        -1 => {
            let e = io::Error::last_os_error();
            sys::set_raw_sigmask(old_mask);
            [caller_end, daemon_end].into_iter().for_each(sys::close);
            Err(e)
        }
        0 => {
            creation.in_child();
            sys::close(caller_end);
            // SAFETY: we are the single-threaded child of the fork above and
            // own daemon_end; the daemon it returns in is bound by daemonize's contract.
            unsafe { intermediate::intermediate(plan, daemon_end) }
        }
        pid => {
            sys::set_raw_sigmask(old_mask);
            sys::close(daemon_end);
            let ticket = creation.track_private(pid, sys::pidfd_open(pid).ok());
            reaper::collect_private(ticket, pid);
            let report = read_report(caller_end);
            sys::close(caller_end);
            match report {
                Some(Report { error: 0, pid, .. }) => Ok(Daemonized::Caller { daemon: pid }),
                Some(Report { error, pid: failed, exits }) => {
                    // A subreaper caller adopts the failed daemon: collect it,
                    // unless it goes on running (a blocking wait would hang).
                    // Not the intermediate, collected above: its pid may name
                    // a new child by now.
                    if failed != pid && (exits != 0 || ends_soon(failed)) {
                        reaper::collect_adopted(failed);
                    }
                    Err(io::Error::from_raw_os_error(error))
                }
                None => Err(error(libc::ECHILD)),
            }
        }
    }
}

/// Sends a report; `exits`: the sender `_exit`s right after. Never raises
/// SIGPIPE. Async-signal-safe.
pub(super) fn send_report(fd: RawFd, error: c_int, exits: bool) {
    // SAFETY: getpid cannot fail.
    let report = Report { error, pid: unsafe { libc::getpid() }, exits: exits.into() };
    // SAFETY: sends the bytes of a plain struct.
    unsafe { libc::send(fd, (&report as *const Report).cast(), std::mem::size_of::<Report>(), libc::MSG_NOSIGNAL) };
}

/// Whether the daemon `pid`, which reported an error with `daemon_ready`,
/// ends within [`READY_ERROR_EXIT_MS`] in a subreaper caller (its adopter).
/// False in other callers, which cannot collect it, and without pidfds.
fn ends_soon(pid: pid_t) -> bool {
    let mut subreaper: c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER stores one int at the pointer given.
    if unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut subreaper as *mut c_int) } != 0 || subreaper == 0 {
        return false;
    }
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        // Reaped already (by a handler): collect_adopted drops its record.
        Err(e) => return e.raw_os_error() == Some(libc::ESRCH),
    };
    let deadline = Instant::now() + Duration::from_millis(READY_ERROR_EXIT_MS as u64);
    let ended = loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis() as c_int;
        let mut p = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left) };
        if n == -1 && sys::errno() == libc::EINTR {
            continue;
        }
        break n > 0;
    };
    sys::close(pidfd);
    ended
}

fn read_report(fd: RawFd) -> Option<Report> {
    let mut report = Report { error: 0, pid: 0, exits: 0 };
    let size = std::mem::size_of::<Report>();
    loop {
        // SAFETY: reads at most size bytes into the struct.
        let n = unsafe { libc::recv(fd, (&mut report as *mut Report).cast(), size, libc::MSG_WAITALL) };
        if n == size as isize {
            return Some(report);
        }
        if n == -1 && sys::errno() == libc::EINTR {
            continue;
        }
        return None;
    }
}

/// In the daemon: reports readiness (`error` 0) or failure (an errno value) to
/// the process that called [`daemonize`] with `WAIT_READY` (C: `zdaemon_ready`).
/// Later calls, and calls in other processes, do nothing. `EINVAL` for a
/// negative `error`.
pub fn daemon_ready(code: c_int) -> io::Result<()> {
    if code < 0 {
        return Err(error(libc::EINVAL));
    }
    // SAFETY: getpid cannot fail.
    if READY_PID.load(SeqCst) != unsafe { libc::getpid() } {
        return Ok(());
    }
    let fd = READY_FD.swap(-1, SeqCst);
    if fd >= 0 {
        send_report(fd, code, false);
        sys::close(fd);
    }
    Ok(())
}

/// In a child the daemon forks: close the inherited report socket, so the
/// caller learns at once if the daemon dies before it is ready.
/// Async-signal-safe (called from the fork handler).
#[link_section = ".zreap_fork_child"]
fn forget_ready_in_child() {
    // Looked at first: a swap writes, and a write copies the page.
    if READY_FD.load(SeqCst) >= 0 {
        sys::close(READY_FD.swap(-1, SeqCst));
    }
}

fn error(code: c_int) -> io::Error {
    io::Error::from_raw_os_error(code)
}
