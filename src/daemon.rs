//! `daemonize`: double fork + setsid, with the outcome reported back to the
//! caller's process, a locked pidfile and optional readiness.
//!
//! The caller's process forks a tracked intermediate, which calls setsid() and
//! forks the daemon, then exits; the caller collects the intermediate (through
//! the reaper, so no zombie whether or not a handler is installed) and reads a
//! close-on-exec socket pair until the daemon reports: its pid once set up (or,
//! with `WAIT_READY`, once it calls [`daemon_ready`]), or the errno of the step
//! that failed. EOF means the daemon died before reporting.
//!
//! Between fork and the end of setup only async-signal-safe system calls run:
//! everything that needs memory (paths, the pidfile's temporary name) is
//! prepared before the first fork.

use crate::{reaper, sys};
use libc::{c_int, pid_t};
use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering::SeqCst};

/// Flags for [`DaemonOptions::flags`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DaemonFlags(u32);

impl DaemonFlags {
    /// Do not close fds above 2 (C: `ZDAEMON_KEEP_FDS`).
    pub const KEEP_FDS: DaemonFlags = DaemonFlags(0x1);
    /// Do not point 0, 1 and 2 at /dev/null (C: `ZDAEMON_KEEP_STDIO`).
    pub const KEEP_STDIO: DaemonFlags = DaemonFlags(0x2);
    /// Do not chdir (C: `ZDAEMON_NO_CHDIR`).
    pub const NO_CHDIR: DaemonFlags = DaemonFlags(0x4);
    /// The caller's process waits for [`daemon_ready`] (C: `ZDAEMON_WAIT_READY`).
    pub const WAIT_READY: DaemonFlags = DaemonFlags(0x8);
    /// The caller's process returns instead of exiting (C: `ZDAEMON_RETURN`).
    pub const RETURN: DaemonFlags = DaemonFlags(0x10);
    const ALL: u32 = 0x1f;

    pub const fn empty() -> Self {
        DaemonFlags(0)
    }

    /// Flags from C bits; `EINVAL` for unknown bits.
    pub fn from_bits(bits: u32) -> Result<Self, Errno> {
        if bits & !Self::ALL != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(DaemonFlags(bits))
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn contains(self, other: DaemonFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for DaemonFlags {
    type Output = DaemonFlags;
    fn bitor(self, rhs: DaemonFlags) -> DaemonFlags {
        DaemonFlags(self.0 | rhs.0)
    }
}

/// How to daemonize. `Default` (and `new`): chdir to "/", umask 0, stdio on
/// /dev/null, every other fd closed, no pidfile, the caller's process exits 0
/// once set up; the same defaults as `zdaemon_options_init`.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
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
    Caller { daemon: pid_t },
}

/// The report the daemon sends: errno (0 for success) and its pid.
#[repr(C)]
#[derive(Clone, Copy)]
struct Report {
    error: c_int,
    pid: pid_t,
}

/// The daemon's end of the report socket while it owes a readiness report,
/// and the daemon's pid (a child it forks must not answer for it).
static READY_FD: AtomicI32 = AtomicI32::new(-1);
static READY_PID: AtomicI32 = AtomicI32::new(0);
/// The pidfile the daemon removes when it exits normally (leaked CString).
static PIDFILE: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// The daemon's pid and the pidfile's inode, for the exit-time removal.
static DAEMON_PID: AtomicI32 = AtomicI32::new(0);
static PIDFILE_INO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
/// path; nothing is forked then. A live daemon holding the pidfile: `EEXIST`.
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
pub unsafe fn daemonize(options: &DaemonOptions) -> Result<Daemonized, Errno> {
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
        Err(Errno::ECHILD) => {
            eprintln!("zdaemonize: the daemon exited before it reported");
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
        Err(e) => {
            eprintln!("zdaemonize: the daemon could not start: {}", e.desc());
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
}

fn plan(options: &DaemonOptions) -> Result<Plan, Errno> {
    let flags = DaemonFlags::from_bits(options.flags.bits())?;
    let umask = match options.umask {
        None => None,
        Some(m) if m <= 0o777 => Some(m as libc::mode_t),
        Some(_) => return Err(Errno::EINVAL),
    };
    let nonempty = |p: &CString| if p.as_bytes().is_empty() { Err(Errno::EINVAL) } else { Ok(()) };
    let workdir = options.workdir.clone().unwrap_or_else(|| c"/".to_owned());
    nonempty(&workdir)?;
    let pidfile = options.pidfile.as_ref().map(|p| nonempty(p).map(|()| absolute(p))).transpose()?;
    if pidfile.as_ref().is_some_and(|p| p.as_bytes().len() + TMP_SUFFIX_MAX >= libc::PATH_MAX as usize) {
        return Err(Errno::ENAMETOOLONG);
    }
    // SAFETY: querying a disposition only.
    let hup_ignored = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old);
        old.sa_sigaction == libc::SIG_IGN
    };
    Ok(Plan { flags, workdir, pidfile, umask, hup_ignored })
}

/// A relative pidfile is taken relative to the caller's working directory.
fn absolute(path: &CStr) -> CString {
    if path.to_bytes().starts_with(b"/") {
        return path.to_owned();
    }
    let mut full = std::env::current_dir().map(|d| d.into_os_string().into_encoded_bytes()).unwrap_or_default();
    full.push(b'/');
    full.extend_from_slice(path.to_bytes());
    CString::new(full).unwrap_or_else(|_| path.to_owned())
}

fn run(plan: &Plan) -> Result<Daemonized, Errno> {
    if let Some(p) = &plan.pidfile {
        register_pidfile_removal(p);
    }
    let mut pair = [-1; 2];
    // SAFETY: pair has room for two fds.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) } == -1 {
        return Err(Errno::last());
    }
    let [caller_end, daemon_end] = pair;
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
            let e = Errno::last();
            sys::set_raw_sigmask(old_mask);
            [caller_end, daemon_end].into_iter().for_each(sys::close);
            Err(e)
        }
        0 => {
            creation.in_child();
            sys::close(caller_end);
            intermediate(plan, daemon_end)
        }
        pid => {
            sys::set_raw_sigmask(old_mask);
            sys::close(daemon_end);
            let ticket = creation.track_private(pid, sys::pidfd_open(pid).ok());
            reaper::collect_private(ticket, pid);
            let report = read_report(caller_end);
            sys::close(caller_end);
            match report {
                Some(Report { error: 0, pid }) => Ok(Daemonized::Caller { daemon: pid }),
                Some(Report { error, pid }) => {
                    // A subreaper caller adopts the failed daemon: collect it.
                    reaper::collect_adopted(pid);
                    Err(Errno::from_raw(error))
                }
                None => Err(Errno::ECHILD),
            }
        }
    }
}

/// The intermediate: new session, fork the daemon, exit. Returns only in the
/// daemon. Async-signal-safe.
fn intermediate(plan: &Plan, report_fd: RawFd) -> Result<Daemonized, Errno> {
    // SAFETY: plain system calls in a single-threaded fork child.
    unsafe {
        if libc::setsid() == -1 {
            send_report(report_fd, sys::errno());
            libc::_exit(1);
        }
        let leader = libc::getpid();
        match libc::fork() {
            -1 => {
                send_report(report_fd, sys::errno());
                libc::_exit(1)
            }
            0 => {
                let error = setup_daemon(plan, report_fd, leader);
                if error != 0 {
                    send_report(report_fd, error);
                    libc::_exit(1);
                }
                if plan.flags.contains(DaemonFlags::WAIT_READY) {
                    READY_PID.store(libc::getpid(), SeqCst);
                    READY_FD.store(report_fd, SeqCst);
                } else {
                    send_report(report_fd, 0);
                    sys::close(report_fd);
                }
                Ok(Daemonized::Daemon)
            }
            _ => libc::_exit(0),
        }
    }
}

/// Sets the daemon up; returns 0 or the errno of the step that failed.
/// Async-signal-safe: only system calls, on memory prepared before the fork.
fn setup_daemon(plan: &Plan, report_fd: RawFd, leader: pid_t) -> c_int {
    // SAFETY (whole block): plain system calls in a single-threaded fork child,
    // on buffers owned by the plan.
    unsafe {
        // Wait for the session leader to go: its exit may send SIGHUP to the
        // orphaned process group, which must not reach the daemon.
        while libc::getppid() == leader {
            libc::sched_yield();
        }
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGHUP, &ignore, std::ptr::null_mut());
        reset_dispositions_keeping_ignored(plan.hup_ignored);

        if !plan.flags.contains(DaemonFlags::NO_CHDIR) && libc::chdir(plan.workdir.as_ptr()) == -1 {
            return sys::errno();
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        if !plan.flags.contains(DaemonFlags::KEEP_STDIO) {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null == -1 {
                return sys::errno();
            }
            for fd in 0..3 {
                if libc::dup2(null, fd) == -1 {
                    return sys::errno();
                }
            }
            if null > 2 {
                sys::close(null);
            }
        }
        if !plan.flags.contains(DaemonFlags::KEEP_FDS) {
            close_fds_except(report_fd);
            reaper::forget_fds();
        }
        // Last, so that a failed setup leaves no pidfile behind.
        if let Some(path) = &plan.pidfile {
            if let Err(e) = write_pidfile(path) {
                return e;
            }
        }
        sys::set_raw_sigmask(0);
    }
    0
}

/// Handled signals go back to SIG_DFL; ignored ones stay ignored (as across
/// exec). SIGHUP, ignored by us during setup, follows the caller's choice.
/// Async-signal-safe.
fn reset_dispositions_keeping_ignored(hup_ignored: bool) {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: querying and setting dispositions with valid structs.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == -1 {
                continue;
            }
            let keep = if sig == libc::SIGHUP { hup_ignored } else { old.sa_sigaction == libc::SIG_IGN };
            if !keep {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
    for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: as above.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction != libc::SIG_IGN {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Writes our pid to "<path>.<pid>.tmp", locks it, and puts it in place
/// without a moment where `path` is missing, empty or half-written: a rename
/// that refuses to replace when no pidfile exists, `rename` over a stale one whose lock we hold. A
/// pidfile locked by a live daemon: EEXIST. Returns the fd holding the lock.
/// Async-signal-safe: the temporary name is built on the stack.
fn write_pidfile(path: &CStr) -> Result<RawFd, c_int> {
    // SAFETY (whole block): system calls on NUL-terminated buffers: the plan's
    // path and the stack buffer `tmp`.
    unsafe {
        let pid = libc::getpid();
        let mut text = [0u8; 12];
        let len = format_decimal(pid as u32, &mut text);
        text[len] = b'\n';

        // "<path>.<pid>.tmp": plan() checked that it fits.
        let mut tmp = [0u8; libc::PATH_MAX as usize];
        let base = path.to_bytes();
        tmp[..base.len()].copy_from_slice(base);
        let mut end = base.len();
        tmp[end] = b'.';
        end += 1;
        end += format_decimal(pid as u32, &mut tmp[end..]);
        tmp[end..end + 4].copy_from_slice(b".tmp");
        let tmp_c: *const libc::c_char = tmp.as_ptr().cast();

        let fresh = libc::open(tmp_c, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
        if fresh == -1 {
            return Err(sys::errno());
        }
        let give_up = |e: c_int| {
            libc::unlink(tmp_c);
            sys::close(fresh);
            Err(e)
        };
        if libc::flock(fresh, libc::LOCK_EX | libc::LOCK_NB) == -1
            || libc::write(fresh, text.as_ptr().cast(), len + 1) != (len + 1) as isize
        {
            return give_up(sys::errno());
        }
        // Another daemon may create or replace the file meanwhile: retry a few times.
        for _ in 0..8 {
            let old = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if old == -1 {
                if sys::errno() != libc::ENOENT {
                    return give_up(sys::errno());
                }
                if rename_noreplace(tmp_c, path.as_ptr()) == 0 {
                    return Ok(published(fresh, pid));
                }
                if sys::errno() != libc::EEXIST {
                    return give_up(sys::errno());
                }
                continue;
            }
            if libc::flock(old, libc::LOCK_EX | libc::LOCK_NB) == -1 {
                let e = sys::errno();
                sys::close(old);
                return give_up(if e == libc::EWOULDBLOCK { libc::EEXIST } else { e });
            }
            // A stale pidfile, now locked by us; replace it if it is still the one at `path`.
            let (mut held, mut named): (libc::stat, libc::stat) = (std::mem::zeroed(), std::mem::zeroed());
            let same = libc::fstat(old, &mut held) == 0
                && libc::stat(path.as_ptr(), &mut named) == 0
                && (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino);
            let replaced = same && libc::rename(tmp_c, path.as_ptr()) == 0;
            let e = sys::errno();
            sys::close(old);
            if replaced {
                return Ok(published(fresh, pid));
            }
            if same {
                return give_up(e);
            }
        }
        give_up(libc::EEXIST)
    }
}

/// Moves `from` to `to` unless `to` exists (EEXIST). The fd opened as `from`
/// then names `to`. Where the filesystem has no RENAME_NOREPLACE, link+unlink
/// gives the same guarantee. Async-signal-safe.
///
/// # Safety
/// Both are NUL-terminated paths.
unsafe fn rename_noreplace(from: *const libc::c_char, to: *const libc::c_char) -> c_int {
    // SAFETY: the caller passes valid paths.
    unsafe {
        let rc = libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, from, libc::AT_FDCWD, to, libc::RENAME_NOREPLACE);
        if rc == 0 || !matches!(sys::errno(), libc::EINVAL | libc::ENOSYS) {
            return rc as c_int;
        }
        if libc::link(from, to) == -1 {
            return -1;
        }
        libc::unlink(from);
        0
    }
}

/// Remembers the published pidfile for the exit-time removal.
fn published(fd: RawFd, pid: pid_t) -> RawFd {
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat fills a valid struct.
    if unsafe { libc::fstat(fd, &mut st) } == 0 {
        PIDFILE_INO.store(st.st_ino, SeqCst);
    }
    DAEMON_PID.store(pid, SeqCst);
    fd
}

/// Room the temporary pidfile name needs beyond the path: ".<pid>.tmp\0".
const TMP_SUFFIX_MAX: usize = 1 + 10 + 4 + 1;

/// Writes `n` in decimal into `out`; returns the number of digits.
fn format_decimal(mut n: u32, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = digits[len - 1 - i];
    }
    len
}

/// Closes every fd above 2 but `keep` (close_range where the kernel has it).
/// Async-signal-safe.
fn close_fds_except(keep: RawFd) {
    if keep >= 3 {
        close_range(3, keep as u32 - 1);
        close_range(keep as u32 + 1, u32::MAX);
    } else {
        close_range(3, u32::MAX);
    }
}

fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    // SAFETY: close_range only closes fds; the caller keeps what it needs.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc == -1 {
        // SAFETY: getrlimit fills a valid struct.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        let end = (limit.rlim_cur.min(1 << 20) as u32).min(last.saturating_add(1));
        for fd in first..end {
            sys::close(fd as RawFd);
        }
    }
}

/// Sends a report; never raises SIGPIPE. Async-signal-safe.
fn send_report(fd: RawFd, error: c_int) {
    // SAFETY: getpid cannot fail.
    let report = Report { error, pid: unsafe { libc::getpid() } };
    // SAFETY: sends the bytes of a plain struct.
    unsafe { libc::send(fd, (&report as *const Report).cast(), std::mem::size_of::<Report>(), libc::MSG_NOSIGNAL) };
}

fn read_report(fd: RawFd) -> Option<Report> {
    let mut report = Report { error: 0, pid: 0 };
    let size = std::mem::size_of::<Report>();
    loop {
        // SAFETY: reads at most size bytes into the struct.
        let n = unsafe { libc::recv(fd, (&mut report as *mut Report).cast(), size, libc::MSG_WAITALL) };
        if n == size as isize {
            return Some(report);
        }
        if n == -1 && Errno::last() == Errno::EINTR {
            continue;
        }
        return None;
    }
}

/// In the daemon: reports readiness (`error` 0) or failure (an errno value) to
/// the process that called [`daemonize`] with `WAIT_READY` (C: `zdaemon_ready`).
/// Later calls, and calls in other processes, do nothing. `EINVAL` for a
/// negative `error`.
pub fn daemon_ready(error: c_int) -> Result<(), Errno> {
    if error < 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: getpid cannot fail.
    if READY_PID.load(SeqCst) != unsafe { libc::getpid() } {
        return Ok(());
    }
    let fd = READY_FD.swap(-1, SeqCst);
    if fd >= 0 {
        send_report(fd, error);
        sys::close(fd);
    }
    Ok(())
}

/// In a child the daemon forks: close the inherited report socket, so the
/// caller learns at once if the daemon dies before it is ready.
/// Async-signal-safe (called from the fork handler).
pub(crate) fn forget_ready_in_child() {
    let fd = READY_FD.swap(-1, SeqCst);
    if fd >= 0 {
        sys::close(fd);
    }
}

/// Registers, once per process, the exit handler that removes the daemon's
/// pidfile. Runs before the fork, where registering may allocate.
fn register_pidfile_removal(path: &CStr) {
    let leaked = path.to_owned().into_raw();
    let previous = PIDFILE.swap(leaked, SeqCst);
    if previous.is_null() {
        // SAFETY: remove_pidfile is an extern "C" fn with no arguments.
        unsafe { libc::atexit(remove_pidfile) };
    } else {
        // SAFETY: previous came from CString::into_raw above and is no longer published.
        drop(unsafe { CString::from_raw(previous) });
    }
}

/// At a normal exit of the daemon, removes the pidfile if it is still ours.
extern "C" fn remove_pidfile() {
    let path = PIDFILE.load(SeqCst);
    // SAFETY: getpid cannot fail.
    if path.is_null() || DAEMON_PID.load(SeqCst) != unsafe { libc::getpid() } {
        return;
    }
    // SAFETY: path is a valid C string published by register_pidfile_removal.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(path, &mut st) == 0 && st.st_ino == PIDFILE_INO.load(SeqCst) {
            libc::unlink(path);
        }
    }
}
