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
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

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
    fn new() -> io::Result<ChildStack> {
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
    fn drop(&mut self) {
        // SAFETY: base and CHILD_STACK describe the mapping made in new().
        unsafe { libc::munmap(self.base, CHILD_STACK) };
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
        sys::arm_pdeathsig(request.pdeathsig, parent_pid);
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
