//! `libzreap_preload_core.so`, the preload shim itself. `LD_PRELOAD` names the
//! stub, `libzreap_preload.so` (preload/stub/), which loads this library from its
//! own directory when a process needs it and then forwards its interposed calls
//! here (see [`zreap_preload_core_start`]). Together they fix an unmodified
//! program's zombies:
//!
//! - `ZREAP_REAP=handler` (default): a SIGCHLD handler the program installs is
//!   called once per exited child (SIGCHLD does not queue, so the kernel may run
//!   it once for many), so `wait()`-once handlers no longer leak zombies.
//! - `ZREAP_REAP=all`: also reap children the program never waits for; a later
//!   wait for them still returns their status, exactly once.
//! - `ZREAP_PDEATHSIG=SIG`: every child the program forks gets SIG when the
//!   program dies (armed race-free in a fork handler).
//! - `ZREAP_SUBREAPER=1`: the program adopts its orphaned descendants, and the
//!   shim reaps them.
//! - `ZREAP_LOG=stderr|PATH`: one line per event the shim acted on.
//!
//! With SIGCHLD left at its default, reaping happens on an internal thread
//! (all signals blocked), never in a signal handler: the default never makes a
//! system call fail with EINTR, and neither does the shim. Where the process
//! cannot change its credentials, that thread is one glibc never sees
//! ([`zreap::sys::bare`]), so the program's forks stay on glibc's single-threaded path.
//!
//! A blocking wait for any child is the kernel's own while only that thread
//! reaps (it holds off meanwhile), so tracers get each ptrace stop at once. A
//! vfork child, which runs in the program's memory, never touches the shim's
//! state.
//!
//! A child the shim reaped still answers a program that waits through pidfds
//! (`pidfd_open`, `waitid(P_PIDFD)`, `pidfd_send_signal`) as the zombie it
//! would have been ([`pidfd`]).
//!
//! A bad value prints one line on stderr and the shim stays out of the way.
//! Programs that set SIGCHLD to SIG_IGN, use SA_NOCLDWAIT, block SIGCHLD and
//! read a signalfd, or use job control keep working as before: the shim only
//! acts on exits, never on stops, and leaves ignored SIGCHLD to the kernel.
#![deny(unsafe_op_in_unsafe_fn)]

mod chld;
mod config;
mod log;
mod owner;
mod pidfd;
mod real;
mod spawn;
mod store;
mod wait;

use libc::{c_int, pid_t};
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use zreap::sys;

/// The core's interposers, as the stub (`preload/stub/core.h`) calls them.
#[repr(C)]
pub struct CoreTable {
    version: u32,
    sigaction: unsafe extern "C" fn(c_int, *const SigAction, *mut SigAction) -> c_int,
    signal: unsafe extern "C" fn(c_int, Handler) -> Handler,
    bsd_signal: unsafe extern "C" fn(c_int, Handler) -> Handler,
    sysv_signal: unsafe extern "C" fn(c_int, Handler) -> Handler,
    sigset: unsafe extern "C" fn(c_int, Handler) -> Handler,
    wait: unsafe extern "C" fn(*mut c_int) -> pid_t,
    waitpid: unsafe extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t,
    wait3: unsafe extern "C" fn(*mut c_int, c_int, *mut Usage) -> pid_t,
    wait4: unsafe extern "C" fn(pid_t, *mut c_int, c_int, *mut Usage) -> pid_t,
    waitid: unsafe extern "C" fn(libc::idtype_t, libc::id_t, *mut libc::siginfo_t, c_int) -> c_int,
    popen: unsafe extern "C" fn(CStrPtr, CStrPtr) -> *mut libc::FILE,
    pclose: unsafe extern "C" fn(*mut libc::FILE) -> c_int,
    system: unsafe extern "C" fn(CStrPtr) -> c_int,
    posix_spawn: SpawnFn,
    posix_spawnp: SpawnFn,
    child_made: extern "C" fn(),
    stand_down: extern "C" fn(),
    pidfd_open: unsafe extern "C" fn(pid_t, libc::c_uint) -> c_int,
    pidfd_send_signal: unsafe extern "C" fn(c_int, c_int, *mut libc::siginfo_t, libc::c_uint) -> c_int,
    pidfd_made: extern "C" fn(c_int, pid_t),
    reap_clock: extern "C" fn() -> u64,
    child_pid_given: extern "C" fn(pid_t, u64),
    kill: unsafe extern "C" fn(pid_t, c_int) -> c_int,
}

type SpawnFn = unsafe extern "C" fn(
    *mut pid_t,
    CStrPtr,
    *const libc::posix_spawn_file_actions_t,
    *const libc::posix_spawnattr_t,
    *const *mut libc::c_char,
    *const *mut libc::c_char,
) -> c_int;

/// `ZREAP_PRELOAD_CORE_VERSION` in core.h.
const CORE_VERSION: u32 = 6;
/// The `mode` argument of [`zreap_preload_core_start`] that says: read the
/// environment (`ZREAP_PRELOAD_FROM_ENVIRONMENT`).
const FROM_ENVIRONMENT: c_int = -1;

static TABLE: CoreTable = CoreTable {
    version: CORE_VERSION,
    sigaction,
    signal,
    bsd_signal,
    sysv_signal,
    sigset,
    wait,
    waitpid,
    wait3,
    wait4,
    waitid,
    popen,
    pclose,
    system,
    posix_spawn,
    posix_spawnp,
    child_made: after_child_made,
    stand_down,
    pidfd_open,
    pidfd_send_signal,
    pidfd_made,
    reap_clock,
    child_pid_given,
    kill,
};

/// Starts the shim in this process and returns its interposers; the stub
/// (`libzreap_preload.so`) calls it once, on the first call that needs the
/// core. `next` looks up a libc function after the stub (dlsym(RTLD_NEXT)
/// from the stub). `mode` is ZREAP_REAP (handler or all) when that was the
/// stub's only setting, else -1 (read the environment): the stub read the
/// environment at start-up, and the program may have changed it since.
/// Returns NULL if the core could not start (a panic).
///
/// # Safety
/// `next` is a function that returns the address of the named libc function.
#[no_mangle]
pub unsafe extern "C" fn zreap_preload_core_start(next: real::NextFn, mode: c_int) -> *const CoreTable {
    real::set_next(next);
    match std::panic::catch_unwind(|| start(mode)) {
        Ok(()) => &TABLE,
        Err(_) => std::ptr::null(),
    }
}

fn start(mode: c_int) {
    if !real::resolve_for_handlers() {
        return;
    }
    let settings = match mode {
        FROM_ENVIRONMENT => config::read(),
        lazy => Ok(config::Settings {
            mode: if lazy == c_int::from(config::ALL) { config::ALL } else { config::HANDLER },
            ..config::Settings::DEFAULT
        }),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(problem) => {
            let line = format!("zreap_preload: {problem}; the shim stays out of the way\n");
            let _ = sys::bare::write(2, line.as_bytes());
            return;
        }
    };
    if settings.mode == config::OFF {
        return;
    }
    if let Some(target) = settings.log {
        match open_log(target) {
            Ok(fd) => log::start(fd),
            Err(e) => {
                let line = format!("zreap_preload: ZREAP_LOG={target:?}: {e}; the shim stays out of the way\n");
                let _ = sys::bare::write(2, line.as_bytes());
                return;
            }
        }
    }
    config::apply(&settings);
    if settings.subreaper {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let pdeathsig = settings.pdeathsig != 0;
    let in_child = owner::start(pdeathsig);
    // SAFETY: the fork handlers are extern "C" functions with no arguments.
    unsafe {
        libc::pthread_atfork(
            pdeathsig.then_some(before_fork as extern "C" fn()),
            Some(after_child_made),
            in_child.then_some(in_forked_child as extern "C" fn()),
        )
    };
    chld::adopt_initial_disposition();
}

/// The log: stderr (a duplicate, so the program may close or move fd 2) or a
/// file opened for appending. Close-on-exec either way.
fn open_log(target: &str) -> Result<c_int, std::io::Error> {
    let fd = if target == "stderr" {
        // SAFETY: dups fd 2 to a new close-on-exec fd.
        unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) }
    } else {
        let path = std::ffi::CString::new(target).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: open with a valid path.
        unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC, 0o644) }
    };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// The pid of the process that is forking, for the child's race-free
/// parent-death check (kept only when ZREAP_PDEATHSIG is set).
static FORKING_PARENT: AtomicI32 = AtomicI32::new(0);

/// Before fork(), registered only when ZREAP_PDEATHSIG is set.
extern "C" fn before_fork() {
    let me = sys::bare::getpid();
    // Written only when it changes: after each fork the parent's first write
    // to a page costs it a page fault.
    if FORKING_PARENT.load(SeqCst) != me {
        FORKING_PARENT.store(me, SeqCst);
    }
}

/// In the parent after fork() (whoever called it), and after the stub's
/// vfork, clone and _Fork, which run no fork handlers: a child was made.
extern "C" fn after_child_made() {
    // A panic (a shim bug) must not unwind into glibc's fork.
    let _ = std::panic::catch_unwind(|| chld::child_made(sys::bare::getpid()));
}

/// zreap's library manages this process's children: see [`chld::stand_down`].
extern "C" fn stand_down() {
    let _ = std::panic::catch_unwind(chld::stand_down);
}

/// The reap clock, read before the stub's fork, forkpty, vfork, clone or _Fork
/// makes a child: see [`chld::child_pid_given`]. Async-signal-safe.
extern "C" fn reap_clock() -> u64 {
    chld::reap_clock()
}

/// After the stub's fork, forkpty, vfork, clone or _Fork made child `pid`:
/// see [`chld::child_pid_given`]. Async-signal-safe.
extern "C" fn child_pid_given(pid: pid_t, clock: u64) {
    chld::child_pid_given(pid, clock);
}

/// After glibc's clone made child `pid` with CLONE_PIDFD: its pidfd is known.
extern "C" fn pidfd_made(pidfd: c_int, pid: pid_t) {
    let _ = std::panic::catch_unwind(|| pidfd::pidfd_made(pidfd, pid));
}

/// In the child of fork(), registered only when the child needs the shim at
/// once (see [`owner`]): take the state over, arm the parent-death signal.
/// Async-signal-safe.
extern "C" fn in_forked_child() {
    owner::take_over_in_fork_handler();
    sys::arm_pdeathsig(config::pdeathsig(), FORKING_PARENT.load(SeqCst));
}

// ------------------------------------------------------- the signal family

/// sigaction(2), interposed: SIGCHLD dispositions are the program's own; the
/// kernel runs the shim's handler where the shim needs it.
///
/// # Safety
/// As for sigaction(2).
unsafe fn sigaction_impl(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    if sig != libc::SIGCHLD || !config::active() {
        // SAFETY: forwarded as given.
        return unsafe { real::sigaction(sig, act, old) };
    }
    // SAFETY: forwarded contract.
    unsafe { chld::set_program_action(act, old) }
}

/// A signal()-style call for SIGCHLD: install `handler` with `flags` and
/// `mask_self`, return the previous handler.
fn signal_style(handler: libc::sighandler_t, flags: c_int, mask_self: bool) -> libc::sighandler_t {
    // SAFETY: zeroed sigaction and sigset are valid.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: valid sigset.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        if mask_self {
            libc::sigaddset(&mut act.sa_mask, libc::SIGCHLD);
        }
    }
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    if unsafe { chld::set_program_action(&act, &mut old) } == -1 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// signal(2), interposed (glibc's BSD semantics: SA_RESTART, the signal
/// blocked in its handler).
///
/// # Safety
/// As for signal(2).
unsafe fn signal_impl(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig != libc::SIGCHLD || !config::active() {
        // SAFETY: forwarded as given.
        return unsafe { real::signal_family(&real::SIGNAL, sig, handler) };
    }
    signal_style(handler, libc::SA_RESTART, true)
}

/// bsd_signal(3), interposed: the same as signal.
///
/// # Safety
/// As for bsd_signal(3).
unsafe fn bsd_signal_impl(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig != libc::SIGCHLD || !config::active() {
        // SAFETY: forwarded as given.
        return unsafe { real::signal_family(&real::BSD_SIGNAL, sig, handler) };
    }
    signal_style(handler, libc::SA_RESTART, true)
}

/// sysv_signal(3), interposed: a one-shot handler, not blocked in itself,
/// interrupting system calls.
///
/// # Safety
/// As for sysv_signal(3).
unsafe fn sysv_signal_impl(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig != libc::SIGCHLD || !config::active() {
        // SAFETY: forwarded as given.
        return unsafe { real::signal_family(&real::SYSV_SIGNAL, sig, handler) };
    }
    signal_style(handler, libc::SA_RESETHAND | libc::SA_NODEFER, false)
}

/// sigset(3), interposed (System V): SIG_HOLD blocks the signal; any other
/// disposition is installed and unblocks it. Returns SIG_HOLD if it was
/// blocked, else the previous disposition.
///
/// # Safety
/// As for sigset(3).
unsafe fn sigset_impl(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig != libc::SIGCHLD || !config::active() {
        // SAFETY: forwarded as given.
        return unsafe { real::signal_family(&real::SIGSET, sig, handler) };
    }
    const SIG_HOLD: libc::sighandler_t = 2;
    // SAFETY (whole block): valid sigsets; only this thread's mask changes.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut was: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut was);
        let was_held = libc::sigismember(&was, sig) == 1;
        let previous = if handler == SIG_HOLD {
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            chld::program_action().sa_sigaction
        } else {
            let previous = signal_style(handler, 0, false);
            if previous == libc::SIG_ERR {
                return libc::SIG_ERR;
            }
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            previous
        };
        if was_held {
            SIG_HOLD
        } else {
            previous
        }
    }
}

// ---------------------------------------------------------- making children

/// posix_spawn(3) and posix_spawnp(3), interposed only to keep the reaper
/// thread informed, as [`after_child_made`] does for fork(): the parent
/// gets one if it needs it, and it learns there is a child to watch.
unsafe fn posix_spawn_impl(
    which: &real::Real,
    pid: *mut pid_t,
    path: *const libc::c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attrs: *const libc::posix_spawnattr_t,
    argv: *const *mut libc::c_char,
    envp: *const *mut libc::c_char,
) -> c_int {
    let clock = chld::reap_clock();
    // SAFETY: forwarded as given.
    let rc = unsafe { real::posix_spawn(which, pid, path, actions, attrs, argv, envp) };
    if rc == 0 {
        chld::child_made(sys::bare::getpid());
        // SAFETY: posix_spawn succeeded; pid is NULL or holds the child's pid.
        if let Some(&child) = unsafe { pid.as_ref() } {
            chld::child_pid_given(child, clock);
        }
    }
    rc
}

// ------------------------------------------------------------- the exports

/// Defines an interposed libc function for [`TABLE`]. The body runs under
/// catch_unwind: a panic (a shim bug) never unwinds into, or aborts, the host
/// program; the call fails with ENOTRECOVERABLE instead.
macro_rules! interpose {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:expr; on_panic $failed:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As for the libc function of the same name.
        unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            let body = || {
                // Most bodies are unsafe functions: pidfd_open's is not.
                #[allow(unused_unsafe)]
                // SAFETY: the caller keeps the libc function's contract, which the body needs.
                let value = unsafe { $body };
                value
            };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(value) => value,
                Err(_) => {
                    sys::set_errno(libc::ENOTRECOVERABLE);
                    $failed
                }
            }
        }
    };
}

type Handler = libc::sighandler_t;
type SigAction = libc::sigaction;
type Usage = libc::rusage;
type CStrPtr = *const libc::c_char;

interpose!(/// sigaction(2).
    fn sigaction(sig: c_int, act: *const SigAction, old: *mut SigAction) -> c_int = sigaction_impl(sig, act, old); on_panic -1);
interpose!(/// signal(2).
    fn signal(sig: c_int, handler: Handler) -> Handler = signal_impl(sig, handler); on_panic libc::SIG_ERR);
interpose!(/// bsd_signal(3).
    fn bsd_signal(sig: c_int, handler: Handler) -> Handler = bsd_signal_impl(sig, handler); on_panic libc::SIG_ERR);
interpose!(/// sysv_signal(3).
    fn sysv_signal(sig: c_int, handler: Handler) -> Handler = sysv_signal_impl(sig, handler); on_panic libc::SIG_ERR);
interpose!(/// sigset(3).
    fn sigset(sig: c_int, handler: Handler) -> Handler = sigset_impl(sig, handler); on_panic libc::SIG_ERR);
interpose!(/// wait(2).
    fn wait(status: *mut c_int) -> pid_t = wait::wait4_body(-1, status, 0, std::ptr::null_mut()); on_panic -1);
interpose!(/// waitpid(2).
    fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t =
        wait::wait4_body(pid, status, options, std::ptr::null_mut()); on_panic -1);
interpose!(/// wait3(2).
    fn wait3(status: *mut c_int, options: c_int, usage: *mut Usage) -> pid_t =
        wait::wait4_body(-1, status, options, usage); on_panic -1);
interpose!(/// wait4(2).
    fn wait4(pid: pid_t, status: *mut c_int, options: c_int, usage: *mut Usage) -> pid_t =
        wait::wait4_body(pid, status, options, usage); on_panic -1);
interpose!(/// waitid(2).
    fn waitid(idtype: libc::idtype_t, id: libc::id_t, info: *mut libc::siginfo_t, options: c_int) -> c_int =
        wait::waitid_impl(idtype, id, info, options); on_panic -1);
interpose!(/// popen(3).
    fn popen(command: CStrPtr, mode: CStrPtr) -> *mut libc::FILE = spawn::popen_impl(command, mode); on_panic std::ptr::null_mut());
interpose!(/// pclose(3).
    fn pclose(stream: *mut libc::FILE) -> c_int = spawn::pclose_impl(stream); on_panic -1);
interpose!(/// system(3).
    fn system(command: CStrPtr) -> c_int = spawn::system_impl(command); on_panic -1);
interpose!(/// posix_spawn(3).
    fn posix_spawn(pid: *mut pid_t, path: CStrPtr, actions: *const libc::posix_spawn_file_actions_t,
        attrs: *const libc::posix_spawnattr_t, argv: *const *mut libc::c_char, envp: *const *mut libc::c_char) -> c_int =
        posix_spawn_impl(&real::POSIX_SPAWN, pid, path, actions, attrs, argv, envp); on_panic libc::ENOTRECOVERABLE);
interpose!(/// posix_spawnp(3).
    fn posix_spawnp(pid: *mut pid_t, file: CStrPtr, actions: *const libc::posix_spawn_file_actions_t,
        attrs: *const libc::posix_spawnattr_t, argv: *const *mut libc::c_char, envp: *const *mut libc::c_char) -> c_int =
        posix_spawn_impl(&real::POSIX_SPAWNP, pid, file, actions, attrs, argv, envp); on_panic libc::ENOTRECOVERABLE);
interpose!(/// pidfd_open(2).
    fn pidfd_open(pid: pid_t, flags: libc::c_uint) -> c_int = pidfd::pidfd_open_impl(pid, flags); on_panic -1);
interpose!(/// pidfd_send_signal(2).
    fn pidfd_send_signal(pidfd: c_int, signal: c_int, info: *mut libc::siginfo_t, flags: libc::c_uint) -> c_int =
        pidfd::pidfd_send_signal_impl(pidfd, signal, info, flags); on_panic -1);
interpose!(/// kill(2).
    fn kill(pid: pid_t, signal: c_int) -> c_int = pidfd::kill_impl(pid, signal); on_panic -1);
