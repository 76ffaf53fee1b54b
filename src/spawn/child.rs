//! The cloned child of `spawn`: it shares the parent's memory
//! (CLONE_VM|CLONE_VFORK) while the parent thread is suspended, resets its
//! signals, applies the options and execs.
//!
//! Post-fork code: everything the child runs here is async-signal-safe and
//! allocation-free: system calls and reads of the request only. The parent
//! side ([`spawn_here`]) runs in ordinary context.

use super::{SpawnFlags, SpawnRequest};
use crate::reaper::Creation;
use crate::sys;
use libc::{c_char, c_int, c_void, pid_t};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering::SeqCst};

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
/// One stack is kept between spawns ([`SPARE_STACK`]): a new one costs a
/// `mmap`, a page fault (glibc's `clone` writes the entry point and its
/// argument on it, in the caller) and a `munmap` with its TLB shootdown.
struct ChildStack {
    base: *mut c_void,
}

/// The stack of the last spawn to finish, or null. A spawn takes it, and gives
/// it back unless another spawn already did. A fork in the middle of another
/// thread's spawn leaves the child that thread's stack, mapped and unused
/// (64 KiB of address space, the pages the spawn touched).
///
/// Forks copy it (no `MADV_DONTFORK`, although the program's own `fork()` then
/// copies one more mapping): valgrind runs `clone(CLONE_VM | CLONE_VFORK)` as
/// a plain fork, whose child must find its stack there.
static SPARE_STACK: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        let spare = SPARE_STACK.swap(std::ptr::null_mut(), SeqCst);
        if !spare.is_null() {
            return Ok(ChildStack { base: spare });
        }
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
            return Err(io::Error::last_os_error());
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
    /// Runs once the child has exec'd or exited (CLONE_VFORK): the stack is
    /// free again.
    fn drop(&mut self) {
        if SPARE_STACK.compare_exchange(std::ptr::null_mut(), self.base, SeqCst, SeqCst).is_err() {
            // SAFETY: base and CHILD_STACK describe a mapping made in new(),
            // which no one else holds.
            unsafe { libc::munmap(self.base, CHILD_STACK) };
        }
    }
}

/// Clones, execs and tracks, on the calling thread.
pub(super) fn spawn_here(request: &SpawnRequest<'_>) -> io::Result<pid_t> {
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
    let creation = Creation::begin()?;
    let base = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    let mut pidfd: c_int = -1;
    let mut pid = clone_with(base | libc::CLONE_PIDFD, &mut pidfd);
    if pid == -1 && matches!(sys::errno(), libc::EINVAL | libc::EMFILE | libc::ENFILE) {
        pidfd = -1;
        pid = clone_with(base, &mut pidfd);
    }
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    let pidfd = (pidfd >= 0).then_some(pidfd);
    match args.error.load(SeqCst) {
        0 => {
            creation.track(pid, pidfd);
            Ok(pid)
        }
        error => {
            creation.discard(pid, pidfd);
            Err(io::Error::from_raw_os_error(error))
        }
    }
}

/// The cloned child: resets signals, applies the options, execs.
///
/// Async-signal-safe and allocation-free: it shares the parent's memory and
/// runs while the parent thread is suspended, so it only makes system calls
/// and reads the request. It never returns: on failure it stores errno for the
/// parent and calls `_exit(127)`.
///
/// Only `spawn_here` may use it, as the entry point of its
/// `clone(CLONE_VM | CLONE_VFORK)` child, with `arg` pointing to its
/// `ChildArgs` (clone needs a safe `extern "C" fn`, hence no `unsafe fn`).
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: arg points to the ChildArgs the parent keeps alive during the vfork.
    let args = unsafe { &*(arg as *const ChildArgs<'_, '_>) };
    // SAFETY: this is the clone child of spawn_here (see above): it shares the
    // parent's memory while the parent thread is suspended, and its fds and
    // signal dispositions are its own to change before the exec.
    let error = unsafe { prepare_and_exec(args.request, args.parent_pid) };
    args.error.store(error, SeqCst);
    // SAFETY: _exit never returns and runs no atexit handlers.
    unsafe { libc::_exit(127) }
}

/// Applies every option and execs; returns the errno of the step that failed.
/// Async-signal-safe and allocation-free (see [`child_main`]).
///
/// # Safety
/// Only in the child cloned by `spawn_here` (`CLONE_VM | CLONE_VFORK`), as
/// [`child_main`] calls it: it resets every signal disposition, replaces fds
/// 0..=2 and execs, which is only sound in that child, whose fds and
/// dispositions no other code uses before the exec.
unsafe fn prepare_and_exec(request: &SpawnRequest<'_>, parent_pid: pid_t) -> c_int {
    sys::reset_all_dispositions();
    if request.flags.contains(SpawnFlags::SETSID) {
        if let Err(e) = sys::setsid() {
            return e;
        }
    } else if request.flags.contains(SpawnFlags::SETPGROUP) {
        if let Err(e) = setpgid_self() {
            return e;
        }
    }
    sys::arm_pdeathsig(request.pdeathsig, parent_pid);
    if let Some(cwd) = request.cwd {
        if let Err(e) = sys::chdir(cwd) {
            return e;
        }
    }
    // Move a source that sits on 0..2 out of the way when an earlier dup2
    // replaces it; only then (at RLIMIT_NOFILE, stdout_fd 2 needs no new fd).
    let replaced = |fd: c_int| request.fds.get(fd as usize).is_some_and(|&s| s != -1 && s != fd);
    let mut sources = request.fds;
    for (target, source) in (0..).zip(sources.iter_mut()) {
        if (0..=2).contains(source) && *source < target && replaced(*source) {
            match dup_above_stdio(*source) {
                Ok(moved) => *source = moved,
                Err(e) => return e,
            }
        }
    }
    for (target, &source) in (0..).zip(sources.iter()) {
        let done = match source {
            -1 => Ok(()),
            s if s == target => clear_cloexec(s),
            s => dup2(s, target),
        };
        if let Err(e) = done {
            return e;
        }
    }
    sys::set_raw_sigmask(0);

    let envp = if request.envp.is_null() {
        extern "C" {
            static environ: *const *const c_char;
        }
        // SAFETY: reads glibc's environment pointer, which is initialized
        // before main. Like any execve(environ) after fork, it assumes no other
        // thread of the parent is changing the environment (setenv) meanwhile.
        unsafe { environ }
    } else {
        request.envp
    };
    let single = request.candidates.len() == 1;
    let mut saw_eacces = false;
    for candidate in &request.candidates {
        // SAFETY: candidate is a NUL-terminated CString owned by the request;
        // request.argv is the NULL-terminated array of C strings that `spawn`
        // built and keeps alive (with the strings it points to) until
        // spawn_here returns, which is after this child execs or exits; envp is
        // either such an array built by `spawn` or `environ`. execve only
        // returns on failure.
        unsafe { libc::execve(candidate.as_ptr(), request.argv, envp) };
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

/// `setpgid(0, 0)`: a process group of our own. Async-signal-safe.
fn setpgid_self() -> Result<(), c_int> {
    // SAFETY: integer arguments; only this process's group changes.
    sys::check(unsafe { libc::setpgid(0, 0) }).map(drop)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`: a close-on-exec copy of `fd` above the
/// standard fds. Async-signal-safe.
fn dup_above_stdio(fd: RawFd) -> Result<RawFd, c_int> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument and only adds an fd
    // to the table; fd itself is left untouched.
    sys::check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })
}

/// `fcntl(fd, F_SETFD, 0)`: `fd` survives the exec. Async-signal-safe.
fn clear_cloexec(fd: RawFd) -> Result<(), c_int> {
    // SAFETY: F_SETFD takes an integer argument and only changes fd's flags.
    sys::check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// `dup2(from, to)`, for the standard fds `to` the child sets up for the
/// exec. Async-signal-safe.
fn dup2(from: RawFd, to: RawFd) -> Result<(), c_int> {
    // SAFETY: integer arguments; the only fd replaced is `to`, one of the
    // child's standard fds, which nothing in the child uses before the exec.
    sys::check(unsafe { libc::dup2(from, to) }).map(drop)
}
