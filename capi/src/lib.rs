//! The C ABI of zreap (`libzreap.so`, `libzreap.a`, `include/zreap.h`):
//! turns C arguments into calls of the `zreap` crate's public API and errors
//! into errno. No mechanics live here.
//!
//! Every export goes through [`boundary`], which catches panics (they never
//! cross into C: the call fails with `ENOTRECOVERABLE`), sets errno on failure
//! and leaves it untouched on success. Pointers are checked for NULL before
//! anything else.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

use libc::{c_char, c_int, c_void, pid_t};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use zreap_rs::{self as zreap, DaemonFlags, DaemonOptions, Daemonized, ForkResult, InstallFlags, Signal, SpawnFlags};

// Every export carries the version node ZREAP_0 (defined in capi/zreap.map)
// in libzreap.so. `remove` drops the unversioned name from the object, so
// libzreap.a still links with GNU ld (which refuses both names at once).
macro_rules! symver {
    ($($name:ident),* $(,)?) => {
        $(std::arch::global_asm!(concat!(".symver ", stringify!($name), ", ", stringify!($name), "@@ZREAP_0, remove"));)*
    };
}

symver!(
    zreap_install,
    zreap_uninstall,
    zreap_all,
    zwait,
    zreap_fd,
    zspawn_options_init,
    zspawn,
    zfork,
    zdaemon_options_init,
    zdaemonize,
    zdaemon_ready,
    zreap_stats_get,
    zreap_version,
);

/// Reap only children made by zspawn()/zfork(); leave every other child
/// (popen, system, a foreign waitpid) to its own waiter.
pub const ZREAP_OWN: u32 = 0x1u32;
/// prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are reparented here and reaped.
pub const ZREAP_SUBREAPER: u32 = 0x2u32;
/// Install no SIGCHLD handler: the program reaps by calling zreap_all() when
/// zreap_fd() is readable.
pub const ZREAP_NO_HANDLER: u32 = 0x4u32;

// The C constants are the Rust flags' bits (cbindgen needs literals above;
// the `u32` suffix makes them unsigned in C, `1u`, as API.md writes them).
const _: () = {
    assert!(ZREAP_OWN == InstallFlags::OWN.bits());
    assert!(ZREAP_SUBREAPER == InstallFlags::SUBREAPER.bits());
    assert!(ZREAP_NO_HANDLER == InstallFlags::NO_HANDLER.bits());
    assert!(ZSPAWN_SEARCH_PATH == SpawnFlags::SEARCH_PATH.bits());
    assert!(ZSPAWN_SETSID == SpawnFlags::SETSID.bits());
    assert!(ZSPAWN_SETPGROUP == SpawnFlags::SETPGROUP.bits());
    assert!(ZDAEMON_KEEP_FDS == DaemonFlags::KEEP_FDS.bits());
    assert!(ZDAEMON_KEEP_STDIO == DaemonFlags::KEEP_STDIO.bits());
    assert!(ZDAEMON_NO_CHDIR == DaemonFlags::NO_CHDIR.bits());
    assert!(ZDAEMON_WAIT_READY == DaemonFlags::WAIT_READY.bits());
    assert!(ZDAEMON_RETURN == DaemonFlags::RETURN.bits());
    assert!(ZREAP_UNTRACKED_CAPACITY as usize == zreap::UNTRACKED_CAPACITY);
};

/// This many exits of untracked children wait for zreap_all() (never fewer
/// than 4096 in any version); past that the oldest are dropped and counted
/// in zreap_stats.dropped.
pub const ZREAP_UNTRACKED_CAPACITY: u32 = 65536;

/// Look path up in $PATH, like execvp.
pub const ZSPAWN_SEARCH_PATH: u32 = 0x1u32;
/// The child starts a new session.
pub const ZSPAWN_SETSID: u32 = 0x2u32;
/// The child starts a new process group.
pub const ZSPAWN_SETPGROUP: u32 = 0x4u32;

/// zdaemonize(): do not close fds above 2.
pub const ZDAEMON_KEEP_FDS: u32 = 0x1u32;
/// zdaemonize(): do not point 0, 1 and 2 at /dev/null.
pub const ZDAEMON_KEEP_STDIO: u32 = 0x2u32;
/// zdaemonize(): do not chdir.
pub const ZDAEMON_NO_CHDIR: u32 = 0x4u32;
/// zdaemonize(): the caller's process waits for zdaemon_ready().
pub const ZDAEMON_WAIT_READY: u32 = 0x8u32;
/// zdaemonize(): the caller's process returns instead of exiting.
pub const ZDAEMON_RETURN: u32 = 0x10u32;

/// Called by zreap_all() once per delivered exit: the child's pid, its
/// waitpid()-style status, and the ctx given to zreap_all().
pub type zreap_exit_fn = Option<unsafe extern "C" fn(pid: pid_t, wstatus: c_int, ctx: *mut c_void)>;

/// Options for zspawn() and zfork(). Initialise with zspawn_options_init().
#[repr(C)]
pub struct zspawn_options {
    /// ZSPAWN_* flags.
    pub flags: u32,
    /// Signal the child gets when THIS PROCESS dies; 0: none.
    pub pdeathsig: c_int,
    /// Working directory of the child; NULL: inherit.
    pub cwd: *const c_char,
    /// -1: inherit; otherwise dup2'ed onto 0.
    pub stdin_fd: c_int,
    /// -1: inherit; otherwise dup2'ed onto 1.
    pub stdout_fd: c_int,
    /// -1: inherit; otherwise dup2'ed onto 2.
    pub stderr_fd: c_int,
}

/// Options for zdaemonize(). Initialise with zdaemon_options_init().
#[repr(C)]
pub struct zdaemon_options {
    /// ZDAEMON_* flags.
    pub flags: u32,
    /// Working directory of the daemon; NULL: "/".
    pub workdir: *const c_char,
    /// NULL: none. Written by the daemon, locked while it runs; a live daemon
    /// holding it makes zdaemonize() fail with EEXIST. A relative path is taken
    /// from the caller's working directory.
    pub pidfile: *const c_char,
    /// umask of the daemon, 0 to 0777; -1: leave as is. Default 0.
    pub umask: c_int,
}

/// Counters returned by zreap_stats_get().
#[repr(C)]
pub struct zreap_stats {
    /// Children reaped by the library.
    pub reaped: u64,
    /// Exits delivered through zreap_all() or zwait().
    pub reported: u64,
    /// Exits of untracked children dropped from a full buffer.
    pub dropped: u64,
    /// Tracked children alive or not yet delivered.
    pub tracked: u64,
}

/// Runs `body` as one exported call: failures set errno and return `failed`;
/// success leaves errno as the caller had it; a panic is caught and reported
/// as ENOTRECOVERABLE.
fn boundary<T>(failed: T, body: impl FnOnce() -> io::Result<T>) -> T {
    let saved = zreap::sys::errno();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => {
            zreap::sys::set_errno(saved);
            value
        }
        Ok(Err(e)) => {
            zreap::sys::set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            failed
        }
        Err(_) => {
            zreap::sys::set_errno(libc::ENOTRECOVERABLE);
            failed
        }
    }
}

fn error(code: c_int) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Unknown bits: EINVAL.
fn flags<F: bitflags::Flags<Bits = u32>>(bits: u32) -> io::Result<F> {
    F::from_bits(bits).ok_or_else(|| error(libc::EINVAL))
}

/// 0: none; otherwise 1..=SIGRTMAX, else EINVAL.
fn signal(number: c_int) -> io::Result<Option<Signal>> {
    match number {
        0 => Ok(None),
        n => Signal::new(n).map(Some).ok_or_else(|| error(libc::EINVAL)),
    }
}

/// -1: inherit; otherwise an open fd, else EBADF.
fn borrowed_fd<'a>(fd: c_int) -> io::Result<Option<BorrowedFd<'a>>> {
    if fd == -1 {
        return Ok(None);
    }
    // SAFETY: F_GETFD only queries the fd table.
    if fd < -1 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(error(libc::EBADF));
    }
    // SAFETY: fd is open, and the caller keeps it open for the call (C contract).
    Ok(Some(unsafe { BorrowedFd::borrow_raw(fd) }))
}

/// The C strings of a NULL-terminated array.
///
/// # Safety
/// `array` is a valid NULL-terminated array of valid C strings.
unsafe fn strings<'a>(array: *const *mut c_char) -> Vec<&'a CStr> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        // SAFETY: the array is NULL-terminated, so every index up to the NULL is valid.
        let p = unsafe { *array.add(i) };
        if p.is_null() {
            return out;
        }
        // SAFETY: each entry is a valid C string.
        out.push(unsafe { CStr::from_ptr(p) });
        i += 1;
    }
}

/// Sets up reaping for the whole process.
///
/// Without ZREAP_OWN every child is reaped as soon as it exits: this one call
/// replaces a hand-written SIGCHLD handler. The handler is async-signal-safe,
/// keeps errno, loops until no exited child is left and uses SA_RESTART.
///
/// Returns 0, or -1 with errno: EINVAL for unknown flag bits (checked first),
/// EBUSY when already installed with other flags, EAGAIN when the internal
/// thread cannot start, EMFILE, ENFILE or ENOMEM when the library's first fds
/// cannot be made.
///
/// Example: `if (zreap_install(0) == -1) perror("zreap_install");`
#[no_mangle]
pub extern "C" fn zreap_install(flags: u32) -> c_int {
    boundary(-1, || zreap::install(self::flags::<InstallFlags>(flags)?).map(|()| 0))
}

/// Puts back the SIGCHLD disposition that was there before zreap_install().
/// Returns 0 (also when nothing is installed). Does not undo ZREAP_SUBREAPER;
/// recorded exits stay deliverable.
#[no_mangle]
pub extern "C" fn zreap_uninstall() -> c_int {
    boundary(-1, || zreap::uninstall().map(|()| 0))
}

/// Never blocks. Reaps every child in scope that has exited, then calls
/// on_exit (may be NULL) once per exit not yet delivered, oldest first, in
/// ordinary context. Returns how many exits it reported, or -1 with errno
/// EMFILE, ENFILE or ENOMEM when the library's first fds cannot be made.
///
/// Example: `zreap_all(log_exit, NULL);` in a poll loop when zreap_fd() is readable.
///
/// # Safety
/// `on_exit` is NULL or a function that may be called with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn zreap_all(on_exit: zreap_exit_fn, ctx: *mut c_void) -> c_int {
    boundary(-1, || {
        let n = zreap::reap_all(|exit| {
            if let Some(callback) = on_exit {
                // SAFETY: the caller gave a valid callback and its context.
                unsafe { callback(exit.pid, exit.wstatus(), ctx) };
            }
        })?;
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

/// waitpid() that also finds a child the handler has already reaped.
///
/// pid > 0, or -1 for any child in scope; options 0 or WNOHANG. Returns the
/// pid, 0 (WNOHANG, nothing exited yet), or -1 with errno: EINVAL for another
/// pid or option; ECHILD when pid is not a child in scope, its exit was already
/// delivered, or (pid -1) no child in scope is left; EMFILE, ENFILE or ENOMEM
/// when the library's first fds cannot be made. wstatus may be NULL.
///
/// # Safety
/// `wstatus` is NULL or points to a writable int.
#[no_mangle]
pub unsafe extern "C" fn zwait(pid: pid_t, wstatus: *mut c_int, options: c_int) -> pid_t {
    boundary(-1, || {
        if options & !libc::WNOHANG != 0 || !(pid > 0 || pid == -1) {
            return Err(error(libc::EINVAL));
        }
        let exit = match (pid, options & libc::WNOHANG != 0) {
            (-1, false) => Some(zreap::wait_any()?),
            (-1, true) => zreap::try_wait_any()?,
            (pid, false) => Some(zreap::wait(pid)?),
            (pid, true) => zreap::try_wait(pid)?,
        };
        match exit {
            Some(exit) => {
                if !wstatus.is_null() {
                    // SAFETY: the caller passed a writable int or NULL.
                    unsafe { *wstatus = exit.wstatus() };
                }
                Ok(exit.pid)
            }
            None => Ok(0),
        }
    })
}

/// A non-blocking, close-on-exec fd that is readable while an exit of a child
/// in scope waits for zreap_all(), which drains it. For poll/epoll/select
/// loops; the same fd on every call; do not close it. -1 with errno EAGAIN
/// when the internal thread cannot start, EMFILE, ENFILE or ENOMEM when the fd
/// cannot be made.
#[no_mangle]
pub extern "C" fn zreap_fd() -> c_int {
    boundary(-1, || zreap::reap_fd().map(|fd| fd.as_raw_fd()))
}

/// Sets every field of *opts to its default: no flags, no pdeathsig, inherited
/// cwd, stdin, stdout and stderr. Does nothing when opts is NULL.
///
/// # Safety
/// `opts` is NULL or points to writable memory for a zspawn_options.
#[no_mangle]
pub unsafe extern "C" fn zspawn_options_init(opts: *mut zspawn_options) {
    boundary((), || {
        if !opts.is_null() {
            let defaults = zspawn_options {
                flags: 0,
                pdeathsig: 0,
                cwd: std::ptr::null(),
                stdin_fd: -1,
                stdout_fd: -1,
                stderr_fd: -1,
            };
            // SAFETY: opts is non-null and writable per the contract above.
            unsafe { opts.write(defaults) };
        }
        Ok(())
    })
}

/// Starts a program as a tracked child, without copying the parent's memory.
///
/// envp NULL passes the current environment; opts NULL means defaults.
/// Returns the child's pid, or -1 with errno, leaving no child behind:
/// EINVAL (NULL path or argv, unknown flags, pdeathsig outside 0..SIGRTMAX),
/// EBADF (an fd option that is neither -1 nor open), ENAMETOOLONG, EAGAIN,
/// ENOMEM, EMFILE or ENFILE (no process or fd could be made), or the child's
/// own error: ENOENT, EACCES, ENOEXEC, ENOTDIR, or what execve() or
/// chdir(cwd) gave.
///
/// Example: `char *argv[] = {"ls", "-l", NULL}; pid_t pid = zspawn("/bin/ls", argv, NULL, NULL);`
///
/// # Safety
/// path, argv, envp and opts->cwd are NULL or valid C strings / NULL-terminated
/// arrays of C strings; opts is NULL or a valid zspawn_options.
#[no_mangle]
pub unsafe extern "C" fn zspawn(
    path: *const c_char,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
    opts: *const zspawn_options,
) -> pid_t {
    boundary(-1, || {
        if path.is_null() || argv.is_null() {
            return Err(error(libc::EINVAL));
        }
        let mut options = zreap::SpawnOptions::default();
        // SAFETY: opts is NULL or valid, per the contract.
        if let Some(o) = unsafe { opts.as_ref() } {
            options.flags = flags(o.flags)?;
            options.pdeathsig = signal(o.pdeathsig)?;
            options.stdin = borrowed_fd(o.stdin_fd)?;
            options.stdout = borrowed_fd(o.stdout_fd)?;
            options.stderr = borrowed_fd(o.stderr_fd)?;
            // SAFETY: cwd is NULL or a valid C string, per the contract.
            options.cwd = (!o.cwd.is_null()).then(|| unsafe { CStr::from_ptr(o.cwd) });
        }
        // SAFETY: argv and envp are NULL-terminated arrays of C strings (envp
        // may be NULL), per the contract.
        let (args, env) = unsafe { (strings(argv), (!envp.is_null()).then(|| strings(envp))) };
        // SAFETY: path is a valid C string, per the contract.
        zreap::spawn(unsafe { CStr::from_ptr(path) }, &args, env.as_deref(), &options)
    })
}

/// fork() that tracks the child: 0 in the child, its pid in the parent, -1 on
/// error, with no child made: EINVAL for unknown flags or a bad pdeathsig;
/// EAGAIN, ENOMEM, EMFILE or ENFILE when no process or fd could be made.
/// Only opts->flags (SETSID, SETPGROUP) and opts->pdeathsig apply.
///
/// pdeathsig is armed in the child before zfork() returns there, with no
/// window in which the parent's death goes unnoticed. It fires when this
/// process dies or when the thread that called zfork() exits (kernel
/// PR_SET_PDEATHSIG semantics); zspawn() has no such thread caveat.
///
/// # Safety
/// opts is NULL or a valid zspawn_options. In the child of a multi-threaded
/// program, only async-signal-safe functions until exec or _exit.
#[no_mangle]
pub unsafe extern "C" fn zfork(opts: *const zspawn_options) -> pid_t {
    boundary(-1, || {
        // SAFETY: opts is NULL or valid, per the contract.
        let (flags, pdeathsig) = match unsafe { opts.as_ref() } {
            None => (0, 0),
            Some(o) => (o.flags, o.pdeathsig),
        };
        let options =
            zreap::SpawnOptions { flags: self::flags(flags)?, pdeathsig: signal(pdeathsig)?, ..Default::default() };
        // SAFETY: forwarded from this function's contract.
        match unsafe { zreap::fork(&options) }? {
            ForkResult::Child => Ok(0),
            ForkResult::Parent(child) => Ok(child),
        }
    })
}

/// Sets *opts to the defaults: no flags, workdir "/", no pidfile, umask 0.
/// Does nothing when opts is NULL.
///
/// # Safety
/// `opts` is NULL or points to writable memory for a zdaemon_options.
#[no_mangle]
pub unsafe extern "C" fn zdaemon_options_init(opts: *mut zdaemon_options) {
    boundary((), || {
        if !opts.is_null() {
            let defaults = zdaemon_options { flags: 0, workdir: std::ptr::null(), pidfile: std::ptr::null(), umask: 0 };
            // SAFETY: opts is non-null and writable per the contract above.
            unsafe { opts.write(defaults) };
        }
        Ok(())
    })
}

/// Double fork + setsid. Returns 0 in the daemon, which is not a session
/// leader, has no controlling terminal and is no child of the caller; the
/// intermediate process is reaped, leaving no zombie.
///
/// The caller's process exits 0 once the daemon is set up (with
/// ZDAEMON_WAIT_READY: once the daemon calls zdaemon_ready(0)), and exits 1,
/// after one line on stderr, if setup failed (workdir, pidfile ...) or the
/// daemon reported an error or died first. With ZDAEMON_RETURN it returns
/// instead: the daemon's pid, or -1 with the daemon's errno (ECHILD when the
/// daemon died before reporting).
///
/// Errors before anything is forked: EINVAL for unknown flags, a umask outside
/// -1..0777 or an empty workdir/pidfile; ENAMETOOLONG for a path of PATH_MAX
/// bytes or more; EAGAIN or ENOMEM when fork() fails. From the daemon: EEXIST
/// when a live daemon holds the pidfile, ENOENT, EACCES, ENOTDIR or another
/// errno from chdir or the pidfile, or the errno given to zdaemon_ready().
///
/// Example: `if (zdaemonize(NULL) == 0) serve();` (the caller's process exits).
///
/// # Safety
/// opts is NULL or a valid zdaemon_options whose strings are NULL or valid C
/// strings. As for fork(): only the calling thread continues in the daemon.
#[no_mangle]
pub unsafe extern "C" fn zdaemonize(opts: *const zdaemon_options) -> pid_t {
    boundary(-1, || {
        let mut options = DaemonOptions::new();
        // SAFETY: opts is NULL or valid, per the contract.
        if let Some(o) = unsafe { opts.as_ref() } {
            // SAFETY: the strings are NULL or valid C strings, per the contract.
            let string = |p: *const c_char| (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_owned());
            options.flags = flags::<DaemonFlags>(o.flags)?;
            options.workdir = string(o.workdir);
            options.pidfile = string(o.pidfile);
            options.umask = match o.umask {
                -1 => None,
                m => Some(u32::try_from(m).map_err(|_| error(libc::EINVAL))?),
            };
        }
        // SAFETY: forwarded from this function's contract.
        match unsafe { zreap::daemonize(&options) }? {
            Daemonized::Daemon => Ok(0),
            Daemonized::Caller { daemon } => Ok(daemon),
        }
    })
}

/// In the daemon: reports readiness (err 0) or failure (an errno value) to the
/// process that called zdaemonize() with ZDAEMON_WAIT_READY. Returns 0; later
/// calls do nothing. -1/EINVAL for a negative err.
///
/// Example: `listen(fd, 128); zdaemon_ready(0);`
#[no_mangle]
pub extern "C" fn zdaemon_ready(err: c_int) -> c_int {
    boundary(-1, || zreap::daemon_ready(err).map(|()| 0))
}

/// Copies the library's counters into *out. Returns 0, or -1/EINVAL when out is NULL.
///
/// # Safety
/// `out` is NULL or points to writable memory for a zreap_stats.
#[no_mangle]
pub unsafe extern "C" fn zreap_stats_get(out: *mut zreap_stats) -> c_int {
    boundary(-1, || {
        if out.is_null() {
            return Err(error(libc::EINVAL));
        }
        let s = zreap::stats();
        let value = zreap_stats { reaped: s.reaped, reported: s.reported, dropped: s.dropped, tracked: s.tracked };
        // SAFETY: out is non-null and writable per the contract.
        unsafe { out.write(value) };
        Ok(0)
    })
}

/// The library's version, e.g. "0.1.0": a static string, never NULL.
#[no_mangle]
pub extern "C" fn zreap_version() -> *const c_char {
    boundary(std::ptr::null(), || Ok(VERSION.as_ptr()))
}

/// [`zreap::VERSION`] with a NUL byte after it.
const VERSION_BYTES: [u8; zreap::VERSION.len() + 1] = with_nul(zreap::VERSION);

/// The library's version as a C string (the core's, whatever crate compiles this).
const VERSION: &CStr = match CStr::from_bytes_with_nul(&VERSION_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("the version has a NUL byte"),
};

/// `text`'s bytes followed by NUL; `N` is its length plus one.
const fn with_nul<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}
