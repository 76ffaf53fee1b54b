//! Signal masks and dispositions with raw system calls, and the parent-death
//! signal armed race-free: for post-fork child code and internal threads.

use libc::{c_int, pid_t};

/// Raw `rt_sigprocmask(SIG_SETMASK)` of the full 64-bit kernel mask; unlike
/// glibc's wrapper it can block glibc's internal signals too. Returns the old mask.
pub fn set_raw_sigmask(mask: u64) -> u64 {
    let mut old: u64 = 0;
    // SAFETY: both pointers refer to valid 8-byte kernel sigsets.
    unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &mask as *const u64, &mut old as *mut u64, 8usize)
    };
    old
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets every catchable signal's disposition to SIG_DFL with raw system calls
/// (glibc's wrapper refuses its internal signals).
pub fn reset_all_dispositions() {
    let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: dfl is a valid kernel sigaction; the old action is not requested.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

/// Arms `signal` as this process's parent-death signal, race-free: if the
/// parent (`parent_pid`, recorded before the fork) is already gone, the signal
/// is raised at once.
///
/// Async-signal-safe: prctl, getppid, getpid and kill only. Runs in the child
/// between fork and exec.
pub fn arm_pdeathsig(signal: c_int, parent_pid: pid_t) {
    if signal == 0 {
        return;
    }
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0);
        if libc::getppid() != parent_pid {
            libc::kill(libc::getpid(), signal);
        }
    }
}

/// Blocks every signal in the calling thread: internal threads take no
/// signals meant for the host program. glibc's internal signals stay
/// unblocked, so that `setuid()` and thread cancellation in the host keep
/// working.
pub fn block_all_signals_in_this_thread() {
    // SAFETY: set is a valid sigset_t; pthread_sigmask only changes this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Runs `f` with every signal blocked in the calling thread (glibc's
/// internal ones excepted, as `pthread_sigmask` keeps them), then puts the
/// thread's mask back: no handler on this thread runs in the middle of `f`.
/// Async-signal-safe if `f` is.
///
/// ```
/// let got = zreap::sys::with_all_signals_blocked(|| 7);
/// assert_eq!(got, 7);
/// ```
pub fn with_all_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    /// Puts the saved mask back, also if `f` unwinds.
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: a mask pthread_sigmask saved; changes this thread only.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
        }
    }
    // SAFETY: zeroed sigsets are valid; sigfillset and pthread_sigmask only
    // write them and this thread's mask (both async-signal-safe).
    let restore = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
        Restore(saved)
    };
    let result = f();
    drop(restore);
    result
}

/// Starts `entry` on a detached pthread with a stack of `stack_size` bytes and
/// every signal but glibc's own blocked (so that `setuid()` in the host
/// reaches it).
/// Returns the `pthread_create` error number on failure. Unlike
/// `std::thread::spawn`, nothing runs on the new thread before `entry`: std's
/// start-up registers thread-local destructors there, and that allocation
/// gives the thread a malloc arena of its own, whose lock every later
/// `fork()` takes and releases, one page more copied per fork.
pub fn spawn_pthread(
    entry: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
    stack_size: usize,
) -> Result<(), libc::c_int> {
    // SAFETY: attr is initialised by pthread_attr_init before any other use,
    // and destroyed once; the masks are valid sigset_t values.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let rc = libc::pthread_attr_init(&mut attr);
        if rc != 0 {
            return Err(rc);
        }
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, stack_size);
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
        let mut thread: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut thread, &attr, entry, std::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if rc == 0 {
            Ok(())
        } else {
            Err(rc)
        }
    }
}
