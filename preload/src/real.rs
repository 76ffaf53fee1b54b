//! The libc functions the shim interposes, as libc defines them (looked up
//! once, through the stub: what follows it in the lookup order), and raw
//! system calls for the shim's own use: an interposed symbol called by name
//! goes through the stub and back into the shim.

use libc::{c_char, c_int, pid_t};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The stub's lookup of a libc function after itself (dlsym(RTLD_NEXT) from
/// the stub, which is where the program's calls enter the shim).
pub type NextFn = unsafe extern "C" fn(*const c_char) -> *mut libc::c_void;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Records the stub's lookup; called before anything is looked up.
pub fn set_next(next: NextFn) {
    NEXT.store(next as usize, Relaxed);
}

/// One looked-up function pointer.
pub struct Real {
    name: &'static std::ffi::CStr,
    addr: AtomicUsize,
}

impl Real {
    const fn new(name: &'static std::ffi::CStr) -> Self {
        Real { name, addr: AtomicUsize::new(0) }
    }

    /// The function's address, looked up on first use (the core's start looks
    /// up those a signal handler may need, so handlers never call dlsym).
    pub fn get(&self) -> usize {
        let addr = self.addr.load(Relaxed);
        if addr != 0 {
            return addr;
        }
        let next = NEXT.load(Relaxed);
        if next == 0 {
            return 0;
        }
        // SAFETY: NEXT holds a NextFn (set_next); the name is a C string.
        let found = unsafe { std::mem::transmute::<usize, NextFn>(next)(self.name.as_ptr()) } as usize;
        self.addr.store(found, Relaxed);
        found
    }
}

pub static SIGACTION: Real = Real::new(c"sigaction");
pub static SIGNAL: Real = Real::new(c"signal");
pub static BSD_SIGNAL: Real = Real::new(c"bsd_signal");
pub static SYSV_SIGNAL: Real = Real::new(c"sysv_signal");
pub static SIGSET: Real = Real::new(c"sigset");
pub static WAIT4: Real = Real::new(c"wait4");
pub static WAITID: Real = Real::new(c"waitid");
pub static PCLOSE: Real = Real::new(c"pclose");
pub static POPEN: Real = Real::new(c"popen");
pub static SYSTEM: Real = Real::new(c"system");
pub static POSIX_SPAWN: Real = Real::new(c"posix_spawn");
pub static POSIX_SPAWNP: Real = Real::new(c"posix_spawnp");

/// Resolves, when the core starts, the functions a signal handler may need
/// (dlsym is not async-signal-safe); the others resolve on first use.
pub fn resolve_for_handlers() -> bool {
    [&SIGACTION, &WAIT4, &WAITID].iter().all(|r| r.get() != 0)
}
pub type SigactionFn = unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
pub type SignalFn = unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;
pub type Wait4Fn = unsafe extern "C" fn(pid_t, *mut c_int, c_int, *mut libc::rusage) -> pid_t;
pub type WaitidFn = unsafe extern "C" fn(libc::idtype_t, libc::id_t, *mut libc::siginfo_t, c_int) -> c_int;
pub type PcloseFn = unsafe extern "C" fn(*mut libc::FILE) -> c_int;
pub type PopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;
pub type SystemFn = unsafe extern "C" fn(*const c_char) -> c_int;
pub type PosixSpawnFn = unsafe extern "C" fn(
    *mut pid_t,
    *const c_char,
    *const libc::posix_spawn_file_actions_t,
    *const libc::posix_spawnattr_t,
    *const *mut c_char,
    *const *mut c_char,
) -> c_int;

/// libc's sigaction.
///
/// # Safety
/// As for sigaction(2).
pub unsafe fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    // SAFETY: the address is libc's sigaction, of this type.
    unsafe { std::mem::transmute::<usize, SigactionFn>(SIGACTION.get())(sig, act, old) }
}

/// A libc signal()-family function (signal, bsd_signal, sysv_signal, sigset).
///
/// # Safety
/// `which` is one of those four.
pub unsafe fn signal_family(which: &Real, sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: the address is a libc function of this type.
    unsafe { std::mem::transmute::<usize, SignalFn>(which.get())(sig, handler) }
}

/// libc's wait4 (a cancellation point, like the program expects).
///
/// # Safety
/// As for wait4(2).
pub unsafe fn wait4(pid: pid_t, status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> pid_t {
    // SAFETY: the address is libc's wait4.
    unsafe { std::mem::transmute::<usize, Wait4Fn>(WAIT4.get())(pid, status, options, usage) }
}

/// libc's waitid.
///
/// # Safety
/// As for waitid(2).
pub unsafe fn waitid(idtype: libc::idtype_t, id: libc::id_t, info: *mut libc::siginfo_t, options: c_int) -> c_int {
    // SAFETY: the address is libc's waitid.
    unsafe { std::mem::transmute::<usize, WaitidFn>(WAITID.get())(idtype, id, info, options) }
}

/// libc's pclose, for streams the shim did not open.
///
/// # Safety
/// As for pclose(3).
pub unsafe fn pclose(stream: *mut libc::FILE) -> c_int {
    // SAFETY: the address is libc's pclose.
    unsafe { std::mem::transmute::<usize, PcloseFn>(PCLOSE.get())(stream) }
}

/// libc's popen (the shim is off).
///
/// # Safety
/// As for popen(3).
pub unsafe fn popen(command: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: the address is libc's popen.
    unsafe { std::mem::transmute::<usize, PopenFn>(POPEN.get())(command, mode) }
}

/// libc's system (the shim is off).
///
/// # Safety
/// As for system(3).
pub unsafe fn system(command: *const c_char) -> c_int {
    // SAFETY: the address is libc's system.
    unsafe { std::mem::transmute::<usize, SystemFn>(SYSTEM.get())(command) }
}

/// libc's posix_spawn or posix_spawnp (`which`).
///
/// # Safety
/// As for posix_spawn(3); `which` is POSIX_SPAWN or POSIX_SPAWNP.
pub unsafe fn posix_spawn(
    which: &Real,
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attrs: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the address is the libc function of this type.
    unsafe { std::mem::transmute::<usize, PosixSpawnFn>(which.get())(pid, path, actions, attrs, argv, envp) }
}

/// The current environment, for posix_spawn.
pub fn environ() -> *const *mut c_char {
    extern "C" {
        static environ: *const *mut c_char;
    }
    // SAFETY: reading the process's environ pointer.
    unsafe { environ }
}
