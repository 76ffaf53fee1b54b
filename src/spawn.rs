//! Starting tracked children: `spawn` (clone with CLONE_VM|CLONE_VFORK, so the
//! parent's memory is never copied) and `fork`.

use crate::pdeath;
use crate::reaper;
use crate::sys;
use libc::{c_char, c_int, c_void, pid_t};
use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

/// Flags for [`SpawnOptions::flags`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpawnFlags(u32);

impl SpawnFlags {
    /// Look the program up in `$PATH` when it has no '/' (C: `ZSPAWN_SEARCH_PATH`).
    pub const SEARCH_PATH: SpawnFlags = SpawnFlags(0x1);
    /// The child starts a new session (C: `ZSPAWN_SETSID`).
    pub const SETSID: SpawnFlags = SpawnFlags(0x2);
    /// The child starts a new process group (C: `ZSPAWN_SETPGROUP`).
    pub const SETPGROUP: SpawnFlags = SpawnFlags(0x4);
    const ALL: u32 = 0x7;

    pub const fn empty() -> Self {
        SpawnFlags(0)
    }

    /// Flags from C bits; `EINVAL` for unknown bits.
    pub fn from_bits(bits: u32) -> Result<Self, Errno> {
        if bits & !Self::ALL != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(SpawnFlags(bits))
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn contains(self, other: SpawnFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for SpawnFlags {
    type Output = SpawnFlags;
    fn bitor(self, rhs: SpawnFlags) -> SpawnFlags {
        SpawnFlags(self.0 | rhs.0)
    }
}

/// How to start a child. `Default` inherits everything.
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    pub flags: SpawnFlags,
    /// Signal the child gets when this process dies; 0 for none.
    pub pdeathsig: c_int,
    /// Working directory of the child; None inherits.
    pub cwd: Option<CString>,
    /// Fds put on 0, 1 and 2 in the child; None inherits.
    pub stdin: Option<RawFd>,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
}

/// Checks a signal number: 0 (none) or 1..=SIGRTMAX.
pub(crate) fn check_signal(signal: c_int) -> Result<(), Errno> {
    if (0..=libc::SIGRTMAX()).contains(&signal) {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// Checks an fd option: -1 (inherit) or an open fd.
fn check_fd(fd: c_int) -> Result<(), Errno> {
    if fd == -1 {
        return Ok(());
    }
    // SAFETY: F_GETFD only queries the fd table.
    if fd < -1 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Errno::EBADF);
    }
    Ok(())
}

/// A validated spawn, borrowing the caller's C arrays.
pub(crate) struct SpawnRequest<'a> {
    /// Paths to try in order (one unless searching $PATH).
    candidates: Vec<CString>,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: SpawnFlags,
    pdeathsig: c_int,
    cwd: Option<&'a CStr>,
    fds: [c_int; 3],
}

impl<'a> SpawnRequest<'a> {
    /// Validates the arguments and resolves the program's path.
    ///
    /// # Safety
    /// `argv` and `envp` (unless null, meaning the current environment) must be
    /// null-terminated arrays of valid C strings that outlive the request.
    pub(crate) unsafe fn new(
        path: &CStr,
        argv: *const *const c_char,
        envp: *const *const c_char,
        flags: u32,
        pdeathsig: c_int,
        cwd: Option<&'a CStr>,
        fds: [c_int; 3],
    ) -> Result<Self, Errno> {
        let flags = SpawnFlags::from_bits(flags)?;
        check_signal(pdeathsig)?;
        fds.iter().try_for_each(|&fd| check_fd(fd))?;
        if argv.is_null() {
            return Err(Errno::EINVAL);
        }
        let bytes = path.to_bytes();
        if bytes.len() >= libc::PATH_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        if bytes.is_empty() {
            return Err(Errno::ENOENT);
        }
        let candidates = if flags.contains(SpawnFlags::SEARCH_PATH) && !bytes.contains(&b'/') {
            path_candidates(bytes)
        } else {
            vec![path.to_owned()]
        };
        Ok(SpawnRequest { candidates, argv, envp, flags, pdeathsig, cwd, fds })
    }
}

/// The places `execvp` would try for `name`: each `$PATH` entry (default
/// "/bin:/usr/bin"; an empty entry is the current directory) joined with it.
fn path_candidates(name: &[u8]) -> Vec<CString> {
    // SAFETY: getenv reads the environment without Rust's env lock, which a
    // forked child could have inherited held.
    let path = unsafe { libc::getenv(c"PATH".as_ptr()) };
    let path: &[u8] = if path.is_null() {
        b"/bin:/usr/bin"
    } else {
        // SAFETY: getenv returned a valid C string.
        unsafe { CStr::from_ptr(path) }.to_bytes()
    };
    path.split(|&b| b == b':')
        .filter_map(|dir| {
            let mut full = if dir.is_empty() { b".".to_vec() } else { dir.to_vec() };
            full.push(b'/');
            full.extend_from_slice(name);
            CString::new(full).ok()
        })
        .collect()
}

/// Starts the program of `request` as a tracked child. With a parent-death
/// signal the clone happens on the service thread, which lives as long as the
/// process (even the main thread may end first, with pthread_exit).
pub(crate) fn spawn_request(request: &SpawnRequest<'_>) -> Result<pid_t, Errno> {
    if request.pdeathsig != 0 {
        pdeath::spawn_from_service(request)
    } else {
        spawn_here(request)
    }
}

/// What the child shares with its suspended parent (CLONE_VM).
struct ChildArgs<'r, 'a> {
    request: &'r SpawnRequest<'a>,
    parent_pid: pid_t,
    /// errno of the failed step; 0 while the exec has not failed.
    error: AtomicI32,
}

const CHILD_STACK: usize = 64 * 1024;

/// The child's stack: its own mapping, so that no allocator lock is involved
/// (a forked child may call `spawn` with an allocator that is not fork-safe).
struct ChildStack {
    base: *mut c_void,
}

impl ChildStack {
    fn new() -> Result<ChildStack, Errno> {
        // SAFETY: an anonymous private mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHILD_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(ChildStack { base })
    }

    /// The top of the stack (it grows down), 16-byte aligned.
    fn top(&self) -> *mut c_void {
        // SAFETY: the offset is the mapping's length: one past its end.
        unsafe { self.base.cast::<u8>().add(CHILD_STACK).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: base and CHILD_STACK describe the mapping made in new().
        unsafe { libc::munmap(self.base, CHILD_STACK) };
    }
}

/// Clones, execs and tracks, on the calling thread.
pub(crate) fn spawn_here(request: &SpawnRequest<'_>) -> Result<pid_t, Errno> {
    let stack = ChildStack::new()?;
    // SAFETY: getpid cannot fail.
    let args = ChildArgs { request, parent_pid: unsafe { libc::getpid() }, error: AtomicI32::new(0) };
    let top = stack.top();

    let clone_with = |flags: c_int, pidfd: &mut c_int| -> pid_t {
        // All signals stay blocked until the child has reset its dispositions:
        // a handler must not run in a child that shares our memory.
        let old_mask = sys::set_raw_sigmask(!0);
        // SAFETY: child_main is async-signal-safe and never returns; the stack
        // is ours for the child's whole life (CLONE_VFORK suspends us until it
        // execs or exits); args outlives the child's use of it.
        let pid = unsafe {
            libc::clone(
                child_main,
                top,
                flags,
                (&args as *const ChildArgs<'_, '_>).cast_mut().cast(),
                pidfd as *mut c_int,
            )
        };
        let err = sys::errno();
        sys::set_raw_sigmask(old_mask);
        sys::set_errno(err);
        pid
    };
    // No pass may reap the child before it is registered.
    let creation = reaper::Creation::begin()?;
    let base = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    let mut pidfd: c_int = -1;
    let mut pid = clone_with(base | libc::CLONE_PIDFD, &mut pidfd);
    if pid == -1 && matches!(Errno::last(), Errno::EINVAL | Errno::EMFILE | Errno::ENFILE) {
        pidfd = -1;
        pid = clone_with(base, &mut pidfd);
    }
    if pid == -1 {
        return Err(Errno::last());
    }
    let pidfd = (pidfd >= 0).then_some(pidfd);
    match args.error.load(SeqCst) {
        0 => {
            creation.track(pid, pidfd);
            Ok(pid)
        }
        error => {
            creation.discard(pid, pidfd);
            Err(Errno::from_raw(error))
        }
    }
}

/// The cloned child: resets signals, applies the options, execs.
///
/// Async-signal-safe and allocation-free: it shares the parent's memory and
/// runs while the parent thread is suspended, so it only makes system calls
/// and reads the request. It never returns: on failure it stores errno for the
/// parent and calls `_exit(127)`.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: arg points to the ChildArgs the parent keeps alive during the vfork.
    let args = unsafe { &*(arg as *const ChildArgs<'_, '_>) };
    let error = prepare_and_exec(args.request, args.parent_pid);
    args.error.store(error, SeqCst);
    // SAFETY: _exit never returns and runs no atexit handlers.
    unsafe { libc::_exit(127) }
}

/// Applies every option and execs; returns the errno of the step that failed.
/// Async-signal-safe (see [`child_main`]).
fn prepare_and_exec(request: &SpawnRequest<'_>, parent_pid: pid_t) -> c_int {
    sys::reset_all_dispositions();
    // SAFETY (whole block): plain system calls on integers and on C strings
    // owned by the request, which outlives the child's use of it.
    unsafe {
        if request.flags.contains(SpawnFlags::SETSID) {
            if libc::setsid() == -1 {
                return sys::errno();
            }
        } else if request.flags.contains(SpawnFlags::SETPGROUP) && libc::setpgid(0, 0) == -1 {
            return sys::errno();
        }
        pdeath::arm_in_child(request.pdeathsig, parent_pid);
        if let Some(cwd) = request.cwd {
            if libc::chdir(cwd.as_ptr()) == -1 {
                return sys::errno();
            }
        }
        // Move sources that sit on 0..2 out of the way before any dup2.
        let mut sources = request.fds;
        for (target, source) in (0..).zip(sources.iter_mut()) {
            if (0..=2).contains(source) && *source != target {
                let moved = libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, 3);
                if moved == -1 {
                    return sys::errno();
                }
                *source = moved;
            }
        }
        for (target, &source) in (0..).zip(sources.iter()) {
            let failed = match source {
                -1 => false,
                s if s == target => libc::fcntl(s, libc::F_SETFD, 0) == -1,
                s => libc::dup2(s, target) == -1,
            };
            if failed {
                return sys::errno();
            }
        }
        sys::set_raw_sigmask(0);

        let envp = if request.envp.is_null() {
            extern "C" {
                static environ: *const *const c_char;
            }
            environ
        } else {
            request.envp
        };
        let single = request.candidates.len() == 1;
        let mut saw_eacces = false;
        for candidate in &request.candidates {
            libc::execve(candidate.as_ptr(), request.argv, envp);
            match sys::errno() {
                e if single => return e,
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR => {}
                e => return e,
            }
        }
        if saw_eacces {
            libc::EACCES
        } else {
            libc::ENOENT
        }
    }
}

/// Starts a program as a tracked child (C: `zspawn`).
///
/// `args` is the full argv (its first element is the program name the child
/// sees); `env` None passes the current environment. The parent's memory is not
/// copied. If the program cannot be started, the error is the child's errno
/// (`ENOENT`, `EACCES`, `ENOEXEC`, a failed `chdir` ...) and no child is left.
///
/// ```
/// use std::ffi::CString;
/// let prog = CString::new("/bin/true").unwrap();
/// let pid = zreap::spawn(&prog, &[&prog], None, &zreap::SpawnOptions::default()).unwrap();
/// assert_eq!(zreap::wait(pid, false).unwrap().unwrap().status, 0);
/// ```
pub fn spawn<A: AsRef<CStr>>(
    path: &CStr,
    args: &[A],
    env: Option<&[&CStr]>,
    options: &SpawnOptions,
) -> Result<pid_t, Errno> {
    let argv: Vec<*const c_char> =
        args.iter().map(|a| a.as_ref().as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Option<Vec<*const c_char>> =
        env.map(|e| e.iter().map(|v| v.as_ptr()).chain(std::iter::once(std::ptr::null())).collect());
    let fd = |f: Option<RawFd>| f.unwrap_or(-1);
    // SAFETY: argv and envp are null-terminated arrays of C strings borrowed
    // from args/env, which outlive the request.
    let request = unsafe {
        SpawnRequest::new(
            path,
            argv.as_ptr(),
            envp.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
            options.flags.bits(),
            options.pdeathsig,
            options.cwd.as_deref(),
            [fd(options.stdin), fd(options.stdout), fd(options.stderr)],
        )?
    };
    spawn_request(&request)
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
/// # Safety
/// As for `fork()` in a multi-threaded program: in the child, only
/// async-signal-safe functions until `exec` or `_exit` (the zreap API is usable).
pub unsafe fn fork(options: &SpawnOptions) -> Result<ForkResult, Errno> {
    SpawnFlags::from_bits(options.flags.bits())?;
    check_signal(options.pdeathsig)?;
    fork_raw(options.flags, options.pdeathsig)
}

/// The body of [`fork`], after validation.
pub(crate) fn fork_raw(flags: SpawnFlags, pdeathsig: c_int) -> Result<ForkResult, Errno> {
    // No pass may reap the child before it is registered.
    let creation = reaper::Creation::begin()?;
    // SAFETY: getpid cannot fail.
    let parent_pid = unsafe { libc::getpid() };
    // SAFETY: the child below only makes async-signal-safe system calls before
    // returning to its caller, who is bound by this API's safety contract.
    match unsafe { libc::fork() } {
        -1 => Err(Errno::last()),
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
            pdeath::arm_in_child(pdeathsig, parent_pid);
            Ok(ForkResult::Child)
        }
        pid => {
            creation.track(pid, sys::pidfd_open(pid).ok());
            Ok(ForkResult::Parent { child: Pid::from_raw(pid) })
        }
    }
}
