//! SIGCHLD: the program's own disposition, kept apart from the one the
//! kernel sees, and the shim's handler that calls the program's handler once
//! per exited child.

use crate::store::STORE;
use crate::sys::{self, wstatus_from_siginfo, ErrnoGuard};
use crate::{config, log, real};
use libc::{c_int, c_void};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

/// The SIGCHLD disposition the program asked for (what it gets back from
/// sigaction), behind a sequence lock: the handler reads it without waiting.
struct ProgramAction {
    seq: AtomicU32,
    action: UnsafeCell<libc::sigaction>,
}

// SAFETY: writers are serialised by WRITER and bump `seq` around each write;
// readers retry until they read an even, unchanged `seq`.
unsafe impl Sync for ProgramAction {}

static PROGRAM: ProgramAction = ProgramAction {
    seq: AtomicU32::new(0),
    // SAFETY: all-zero is SIG_DFL with no flags and an empty mask.
    action: UnsafeCell::new(unsafe { std::mem::zeroed() }),
};
static WRITER: AtomicBool = AtomicBool::new(false);

/// Whether the shim's handler is what the kernel runs for SIGCHLD.
static OURS_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Bumped after each run of the shim's handler; blocking waits sleep on it.
pub static WAKE: AtomicU32 = AtomicU32::new(0);

/// The program's disposition. Async-signal-safe (a writer in this very
/// thread cannot be interrupted: writers block SIGCHLD).
pub fn program_action() -> libc::sigaction {
    loop {
        let before = PROGRAM.seq.load(SeqCst);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        // SAFETY: a racing write is detected by the sequence check below.
        let action = unsafe { std::ptr::read_volatile(PROGRAM.action.get()) };
        if PROGRAM.seq.load(SeqCst) == before {
            return action;
        }
    }
}

/// True while the shim's handler is installed (blocking waits then rely on it).
pub fn ours_installed() -> bool {
    OURS_INSTALLED.load(SeqCst)
}

/// Does the shim handle SIGCHLD for this program disposition?
fn wants_ours(action: &libc::sigaction) -> bool {
    if action.sa_flags & libc::SA_NOCLDWAIT != 0 {
        return false; // the kernel reaps: no zombies to fix
    }
    match action.sa_sigaction {
        libc::SIG_IGN => false,
        libc::SIG_DFL => config::reaps_unwaited(),
        _ => true,
    }
}

/// The kernel-side action for a program disposition.
fn kernel_action(action: &libc::sigaction) -> libc::sigaction {
    if !wants_ours(action) {
        return *action;
    }
    let mut ours = *action;
    ours.sa_sigaction = on_sigchld as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize;
    ours.sa_flags = (action.sa_flags | libc::SA_SIGINFO) & !(libc::SA_RESETHAND | libc::SA_NODEFER);
    ours
}

/// Records the program's new SIGCHLD disposition and installs what the kernel
/// should run instead. Returns sigaction's result.
///
/// # Safety
/// `act` and `old` are NULL or valid.
pub unsafe fn set_program_action(act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    let mut block: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut saved: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigsets; blocks SIGCHLD in this thread so the handler
    // cannot interrupt a write of the program's action here.
    unsafe {
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut saved);
    }
    while WRITER.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
        std::thread::yield_now();
    }
    let previous = program_action();
    // SAFETY: act is NULL or valid, per the contract.
    let result = match unsafe { act.as_ref() } {
        None => 0,
        Some(new) => {
            let kernel = kernel_action(new);
            // SAFETY: kernel is a valid action.
            let rc = unsafe { real::sigaction(libc::SIGCHLD, &kernel, std::ptr::null_mut()) };
            if rc == 0 {
                write_program_action(new);
                OURS_INSTALLED.store(wants_ours(new), SeqCst);
            }
            rc
        }
    };
    WRITER.store(false, SeqCst);
    // SAFETY: restores this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut()) };
    if result == 0 {
        // SAFETY: old is NULL or writable, per the contract.
        if let Some(out) = unsafe { old.as_mut() } {
            *out = previous;
        }
    }
    result
}

fn write_program_action(action: &libc::sigaction) {
    PROGRAM.seq.fetch_add(1, SeqCst);
    // SAFETY: the sequence is odd: readers retry; WRITER excludes other writers.
    unsafe { std::ptr::write_volatile(PROGRAM.action.get(), *action) };
    PROGRAM.seq.fetch_add(1, SeqCst);
}

/// At start-up: take over SIGCHLD if the inherited disposition needs it (the
/// `all` mode or a subreaper with SIGCHLD at its default).
pub fn adopt_initial_disposition() {
    // SAFETY: zeroed is a valid sigaction; querying only.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { real::sigaction(libc::SIGCHLD, std::ptr::null(), &mut current) } == 0 {
        // SAFETY: current is valid.
        unsafe { set_program_action(&current, std::ptr::null_mut()) };
    }
}

/// Calls the program's handler as the kernel would have.
fn call_program(action: &libc::sigaction, sig: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    if action.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed this three-argument handler.
        let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(action.sa_sigaction) };
        handler(sig, info, context);
    } else {
        // SAFETY: the program installed this one-argument handler.
        let handler: extern "C" fn(c_int) = unsafe { std::mem::transmute(action.sa_sigaction) };
        handler(sig);
    }
}

/// The first exited child, left waitable (WNOWAIT). Async-signal-safe.
fn next_exited() -> Option<libc::siginfo_t> {
    sys::waitid_info(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT).ok().flatten()
}

/// Reaps `pid` if it is still a zombie and keeps its exit for the program's
/// next wait call. Async-signal-safe.
fn reap_into_store(pid: libc::pid_t, what: &str) {
    // SAFETY: getpgid of a zombie child is still valid until it is reaped.
    let pgid = unsafe { libc::getpgid(pid) };
    if let Ok(Some(info)) = sys::waitid_info(libc::P_PID, pid as libc::id_t, libc::WEXITED | libc::WNOHANG) {
        log::event(what, pid, Some(wstatus_from_siginfo(&info)));
        if let Some(dropped) = STORE.put(&info, pgid) {
            log::event("dropped the stored exit of", dropped, None);
        }
    }
}

/// The shim's SIGCHLD handler.
///
/// Async-signal-safe: raw waitid, getpgid, write, atomics and the lock-free
/// store; errno is restored on return. With a program handler, calls it once
/// per exited child with that child's siginfo (SIGCHLD does not queue, so the
/// kernel may have run it once for many), and keeps the exit of any child the
/// handler left; with none (`all` mode, subreaper), reaps every exited child
/// into the store. A signal with no exited child (a stop, a continue) reaches
/// the program's handler unchanged.
extern "C" fn on_sigchld(sig: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let _errno = ErrnoGuard::new();
    let action = program_action();
    let has_handler = !matches!(action.sa_sigaction, libc::SIG_DFL | libc::SIG_IGN);
    let mut calls = 0usize;
    while calls < crate::store::CAPACITY {
        let Some(mut exited) = next_exited() else { break };
        // SAFETY: from a successful waitid.
        let pid = unsafe { exited.si_pid() };
        if has_handler {
            log::event("calling the program's SIGCHLD handler for", pid, None);
            call_program(&action, sig, &mut exited, context);
            calls += 1;
            reap_into_store(pid, "reaped (the program's handler left it)");
            if action.sa_flags & libc::SA_RESETHAND != 0 {
                break;
            }
        } else {
            calls += 1;
            reap_into_store(pid, "reaped");
        }
    }
    if has_handler && calls == 0 {
        call_program(&action, sig, info, context);
    }
    if has_handler
        && action.sa_flags & libc::SA_RESETHAND != 0
        && WRITER.compare_exchange(false, true, SeqCst, SeqCst).is_ok()
    {
        // One-shot handler: the program's disposition is now the default
        // (unless another thread is setting a new one right now).
        let mut dfl = action;
        dfl.sa_sigaction = libc::SIG_DFL;
        dfl.sa_flags &= !libc::SA_RESETHAND;
        write_program_action(&dfl);
        let kernel = kernel_action(&dfl);
        // SAFETY: sigaction is async-signal-safe; kernel is valid.
        unsafe { real::sigaction(libc::SIGCHLD, &kernel, std::ptr::null_mut()) };
        OURS_INSTALLED.store(wants_ours(&dfl), SeqCst);
        WRITER.store(false, SeqCst);
    }
    WAKE.fetch_add(1, SeqCst);
    // SAFETY: futex wake on a valid word.
    unsafe {
        libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX);
    }
}
