//! SIGCHLD: the program's own disposition, kept apart from the one the
//! kernel sees; the shim's handler that calls the program's handler once per
//! exited child; and, where the program left SIGCHLD at its default, a reaper
//! thread instead of a handler (a handler would make poll, select, sleep and
//! other calls fail with EINTR where the default never does).

use crate::store::{StoredExit, STORE};
use crate::{config, log, real};
use libc::{c_int, c_void};
use std::cell::UnsafeCell;
use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Release,
    Ordering::SeqCst,
};
use zreap::sys::bare;
use zreap::sys::{wstatus_from_siginfo, ErrnoGuard};

/// The SIGCHLD disposition the program asked for (what it gets back from
/// sigaction): two copies and a version, whose low bit says which copy is
/// current. A writer fills the other copy, then bumps the version, so the
/// current copy is always whole: the handler reads it without waiting, and a
/// child forked in the middle of a write starts with the old one.
struct ProgramAction {
    version: AtomicU32,
    copies: [UnsafeCell<libc::sigaction>; 2],
}

// SAFETY: writers are serialised by CHANGING and write only the copy that is not
// current; readers retry when the version moved while they read.
unsafe impl Sync for ProgramAction {}

static PROGRAM: ProgramAction = ProgramAction {
    version: AtomicU32::new(0),
    // SAFETY: all-zero is SIG_DFL with no flags and an empty mask.
    copies: [UnsafeCell::new(unsafe { std::mem::zeroed() }), UnsafeCell::new(unsafe { std::mem::zeroed() })],
};
/// Set while a thread changes the disposition (the kernel's and the record),
/// with every signal blocked in it: no handler runs on that thread meanwhile,
/// so whoever finds it set waits for another thread, which finishes soon; a
/// forked child that finds it set knows the writer is not in the child and
/// finishes for it.
static CHANGING: AtomicBool = AtomicBool::new(false);

/// Whether the shim's handler is what the kernel runs for SIGCHLD.
static OURS_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Bumped after each run of the shim's handler; blocking waits sleep on it.
pub static WAKE: AtomicU32 = AtomicU32::new(0);
/// Threads asleep on [`WAKE`]: a wake with none asleep makes no system call.
pub static WAKE_SLEEPERS: AtomicU32 = AtomicU32::new(0);

/// Bumps [`WAKE`] and wakes the threads asleep on it. Async-signal-safe.
fn wake_waiters() {
    // SeqCst pairs the bump with the sleepers' count: either this sees a
    // sleeper, or the sleeper's futex sees the word changed.
    WAKE.fetch_add(1, SeqCst);
    if WAKE_SLEEPERS.load(SeqCst) > 0 {
        bare::futex_wake_all(&WAKE);
    }
}

/// The program's disposition. Async-signal-safe, and never waits for a
/// writer.
pub fn program_action() -> libc::sigaction {
    loop {
        let version = PROGRAM.version.load(SeqCst);
        // SAFETY: the current copy is not written until the version has moved
        // on, which the check below detects.
        let action = unsafe { std::ptr::read_volatile(PROGRAM.copies[current_copy(version)].get()) };
        // The copy is read before the version is looked at again (pairs with
        // the writer's fence).
        fence(Acquire);
        if PROGRAM.version.load(SeqCst) == version {
            return action;
        }
        std::hint::spin_loop();
    }
}

/// Which of the two copies `version` makes current.
fn current_copy(version: u32) -> usize {
    (version & 1) as usize
}

/// True while the shim may reap a child at any moment (its handler or its
/// thread): blocking waits for any child then poll the store.
pub fn shim_reaps() -> bool {
    OURS_INSTALLED.load(SeqCst) || thread_wanted(&program_action())
}

/// Does the kernel run the shim's handler for this program disposition? Only
/// for a program handler: SIG_IGN and SA_NOCLDWAIT leave no zombies, and the
/// default is served by the reaper thread. Never once the shim stood down.
fn wants_ours(action: &libc::sigaction) -> bool {
    action.sa_flags & libc::SA_NOCLDWAIT == 0
        && !matches!(action.sa_sigaction, libc::SIG_IGN | libc::SIG_DFL)
        && !STOOD_DOWN.load(SeqCst)
}

/// Does the reaper thread serve this disposition (SIGCHLD at its default, in
/// the `all` mode or as a subreaper, and the shim not stood down)?
fn thread_wanted(action: &libc::sigaction) -> bool {
    left_to_default(action) && !STOOD_DOWN.load(SeqCst) && config::reaps_unwaited()
}

/// [`thread_wanted`] in the calling process, whose pid is `me`.
fn thread_wanted_in(action: &libc::sigaction, me: libc::pid_t) -> bool {
    left_to_default(action) && !STOOD_DOWN.load(SeqCst) && config::reaps_unwaited_in(me)
}

/// Set for good once zreap's own library manages this process's children
/// ([`stand_down`]).
static STOOD_DOWN: AtomicBool = AtomicBool::new(false);

/// Leaves the process's children to zreap's library, which calls this (through
/// the stub's `zreap_preload_stand_down`) before it installs its handler or
/// makes its first child: it reaps its children through pidfds and answers
/// `zwait` from its own records, so a shim that reaped them too would take
/// their statuses. From here on the kernel runs the program's own SIGCHLD
/// disposition and the reaper thread reaps nothing; exits the shim stored
/// before stay deliverable to the program's waits. Ordinary context.
pub fn stand_down() {
    // An inactive shim (ZREAP_REAP=off beside a setting that loaded the core,
    // a bad ZREAP_* value; a vfork or raw clone child, which shares or copies
    // its parent's state) never put a handler of its own in the kernel and
    // kept no record of the program's disposition (SIG_DFL by default): there
    // is nothing to undo, and "restoring" the record would reset the
    // program's handler or SIG_IGN to SIG_DFL.
    if !config::active() || STOOD_DOWN.swap(true, SeqCst) {
        return;
    }
    log::event("standing down: zreap's library manages the children of process", bare::getpid(), None);
    let current = program_action();
    // SAFETY: a valid action; puts it in the kernel in place of the shim's
    // handler (wants_ours is now false) and wakes the reaper thread, which
    // then finds itself unwanted.
    unsafe { set_program_action(&current, std::ptr::null_mut()) };
}

/// SIGCHLD at its default, which leaves zombies.
fn left_to_default(action: &libc::sigaction) -> bool {
    action.sa_sigaction == libc::SIG_DFL && action.sa_flags & libc::SA_NOCLDWAIT == 0
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
    if act.is_null() {
        // A query needs no lock (the record is read without waiting): a
        // signal handler may query while its thread is changing the
        // disposition, which would otherwise wait for itself for ever.
        // SAFETY: old is NULL or writable, per the contract.
        if let Some(out) = unsafe { old.as_mut() } {
            *out = program_action();
        }
        return 0;
    }
    // Every signal is blocked while this thread holds CHANGING: a handler that
    // ran here in the meantime and set SIGCHLD (or reset a one-shot one, or
    // forked) would wait for its own thread for ever, or act on a half-made
    // change.
    let (previous, result) = zreap::sys::with_all_signals_blocked(|| {
        while CHANGING.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
            std::thread::yield_now();
        }
        let previous = program_action();
        // SAFETY: act is not NULL, checked above, and valid per the contract.
        let new = unsafe { &*act };
        let kernel = kernel_action(new);
        // SAFETY: kernel is a valid action.
        let rc = unsafe { real::sigaction(libc::SIGCHLD, &kernel, std::ptr::null_mut()) };
        if rc == 0 {
            write_program_action(new);
            OURS_INSTALLED.store(wants_ours(new), SeqCst);
            CHANGED.fetch_add(1, SeqCst);
            bare::futex_wake_all(&CHANGED);
            // A wait polling for the shim's handler looks again: with it
            // gone, the kernel's own wait is the exact one.
            wake_waiters();
        }
        CHANGING.store(false, SeqCst);
        (previous, rc)
    });
    ensure_reaper_thread();
    if result == 0 {
        // SAFETY: old is NULL or writable, per the contract.
        if let Some(out) = unsafe { old.as_mut() } {
            *out = previous;
        }
    }
    result
}

/// Publishes a new program disposition. Only with CHANGING held.
fn write_program_action(action: &libc::sigaction) {
    let version = PROGRAM.version.load(SeqCst);
    let next = version.wrapping_add(1);
    // A reader that sees any of the writes below also sees the version that
    // made this copy the other one (pairs with the reader's fence).
    fence(Release);
    // SAFETY: this copy is not current, and CHANGING excludes other writers;
    // a reader still on it from before the last bump retries.
    unsafe { std::ptr::write_volatile(PROGRAM.copies[current_copy(next)].get(), *action) };
    PROGRAM.version.store(next, SeqCst);
}

/// At start-up: take over SIGCHLD if the inherited disposition needs it (the
/// `all` mode or a subreaper with SIGCHLD at its default).
pub fn adopt_initial_disposition() {
    // SAFETY: zeroed is a valid sigaction; querying only.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { real::sigaction(libc::SIGCHLD, std::ptr::null(), &mut current) } != 0 {
        return;
    }
    // The kernel's 64 signals: glibc fills the rest of sa_mask with whatever
    // was on its stack.
    // SAFETY: sigset_t is at least 8 bytes.
    let kernel_mask = unsafe { std::ptr::read_unaligned((&current.sa_mask as *const libc::sigset_t).cast::<u64>()) };
    if current.sa_sigaction == libc::SIG_DFL && current.sa_flags == 0 && kernel_mask == 0 {
        // What exec leaves unless SIGCHLD was ignored. The recorded action is
        // already this and the kernel's needs no change: this skips
        // set_program_action's calls at every start.
        ensure_reaper_thread();
        return;
    }
    // SAFETY: current is valid.
    unsafe { set_program_action(&current, std::ptr::null_mut()) };
}

/// The child a fan-out is calling the program's handler for (0: none) and its
/// process group: the handler's any-child wait takes this child first, so each
/// call reports its own child.
static FANOUT_PID: AtomicI32 = AtomicI32::new(0);
static FANOUT_PGID: AtomicI32 = AtomicI32::new(0);

/// The child of the fan-out in progress, if any. Async-signal-safe.
pub fn fanout_child() -> Option<(libc::pid_t, libc::pid_t)> {
    let pid = FANOUT_PID.load(SeqCst);
    (pid != 0).then(|| (pid, FANOUT_PGID.load(SeqCst)))
}

/// The last children the program's handler was called for.
const FANNED: usize = 64;
static FANNED_PIDS: [AtomicI32; FANNED] = [const { AtomicI32::new(0) }; FANNED];
static FANNED_NEXT: AtomicU32 = AtomicU32::new(0);

/// Async-signal-safe.
fn remember_fanned(pid: libc::pid_t) {
    let slot = FANNED_NEXT.fetch_add(1, SeqCst) as usize % FANNED;
    FANNED_PIDS[slot].store(pid, SeqCst);
}

/// Async-signal-safe.
fn was_fanned(pid: libc::pid_t) -> bool {
    pid != 0 && FANNED_PIDS.iter().any(|p| p.load(SeqCst) == pid)
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

/// Is this siginfo an exit? The kernel reports a traced child's ptrace stops
/// to waitid even without WSTOPPED: those belong to the tracer, untouched.
fn is_exit(info: &libc::siginfo_t) -> bool {
    matches!(info.si_code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED)
}

/// The first waitable child, left waitable (WNOWAIT), if it has exited
/// (a ptrace stop ahead of it hides the rest until the tracer takes it).
/// Where `signal`, the siginfo the kernel passed the handler, is that child's
/// exit, a copy of it: it alone has the child's own CPU times. Otherwise
/// waitid's siginfo, which has none, with si_utime and si_stime set from the
/// child's resource usage (which also counts the descendants it waited for).
/// Async-signal-safe.
fn next_exited(signal: *const libc::siginfo_t) -> Option<libc::siginfo_t> {
    let (mut info, usage) = bare::waitid_usage(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        .ok()
        .flatten()
        .filter(|(info, _)| is_exit(info))?;
    // SAFETY: the kernel passes NULL or a valid siginfo; si_pid is valid for
    // the exits is_exit accepts.
    if let Some(signal) = unsafe { signal.as_ref() }.filter(|s| is_exit(s)) {
        if unsafe { signal.si_pid() == info.si_pid() } {
            return Some(*signal);
        }
    }
    set_child_times(&mut info, &usage);
    Some(info)
}

/// The kernel's unit of a siginfo's clock_t (USER_HZ, AT_CLKTCK): 100 on
/// every architecture Rust builds for on Linux. A constant, not getauxval:
/// each function the core imports costs every process that loads it.
const USER_HZ: i64 = 100;

/// Sets a SIGCHLD siginfo's si_utime and si_stime, in clock ticks, to the
/// user and system CPU times of `usage`. Async-signal-safe.
fn set_child_times(info: &mut libc::siginfo_t, usage: &libc::rusage) {
    /// The kernel's layout of a SIGCHLD siginfo's first fields.
    #[repr(C)]
    struct Chld {
        signo: c_int,
        errno: c_int,
        code: c_int,
        #[cfg(target_pointer_width = "64")]
        pad: c_int,
        pid: libc::pid_t,
        uid: libc::uid_t,
        status: c_int,
        utime: libc::clock_t,
        stime: libc::clock_t,
    }
    const _: () = assert!(std::mem::size_of::<Chld>() <= std::mem::size_of::<libc::siginfo_t>());
    let ticks = |t: &libc::timeval| (t.tv_sec * USER_HZ + t.tv_usec * USER_HZ / 1_000_000) as libc::clock_t;
    let chld = (info as *mut libc::siginfo_t).cast::<Chld>();
    // SAFETY: Chld fits in siginfo_t (checked above) and has its layout for
    // SIGCHLD; info is a valid, writable siginfo.
    unsafe {
        (*chld).utime = ticks(&usage.ru_utime);
        (*chld).stime = ticks(&usage.ru_stime);
    }
}

/// Reaps `pid` if it is still a zombie and keeps its exit for the program's
/// next wait call. Async-signal-safe.
fn reap_into_store(pid: libc::pid_t, what: &str) {
    // Registered before IN_FLIGHT is raised and cleared after it is lowered:
    // a handler of another signal that interrupts this reap in this thread
    // finds it in settle() and does not wait for it (it cannot end before
    // that handler returns).
    let me = this_thread();
    let slot = HANDLER_REAPS.iter().find(|s| s.compare_exchange(0, me, SeqCst, SeqCst).is_ok());
    IN_FLIGHT.fetch_add(1, SeqCst);
    reap_into_store_now(pid, what);
    IN_FLIGHT.fetch_sub(1, SeqCst);
    if let Some(slot) = slot {
        slot.store(0, SeqCst);
    }
}

/// The threads (pthread_self) whose shim handler is reaping into the store
/// right now; 0: a free slot.
static HANDLER_REAPS: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

/// The calling thread, as pthread_self (no system call). Async-signal-safe.
/// Never called on the bare reaper thread.
fn this_thread() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// Reaps between the kernel and the store: a wait that finds a child gone
/// (ECHILD) waits until this is 0 before its last look at the store.
static IN_FLIGHT: AtomicU32 = AtomicU32::new(0);

/// Program threads in a blocking wait for any child (or a process group)
/// that went to the kernel: the reaper thread leaves every exit to them.
static KERNEL_WAITERS: AtomicU32 = AtomicU32::new(0);

/// What [`enter_kernel_wait`] decided; pass it to [`leave_kernel_wait`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KernelWait {
    /// Poll the store: the shim's handler may take an exit meanwhile.
    No,
    /// The kernel's wait, counted in [`KERNEL_WAITERS`]: no shim handler.
    Counted,
    /// The kernel's wait in a one-thread program with SIGCHLD blocked (see
    /// [`handler_cannot_run`]); the reaper thread takes nothing there.
    Alone,
}

/// Before a blocking wait for any child or a process group: may it block in
/// the kernel's own wait? Yes unless the shim's handler is installed and
/// could run meanwhile (the caller then polls the store): the reaper thread
/// leaves every exit to the kernel's wait until [`leave_kernel_wait`], so the
/// wait returns each child event (an exit, a stop, a tracee's ptrace stop) as
/// soon as the kernel has it. Zombies the wait does not accept (another
/// group) stay until it returns, as without the shim. A program that installs
/// its first SIGCHLD handler in one thread while another thread waits here
/// may have an exit stored by the handler behind that wait's back; it returns
/// at the next child event.
pub fn enter_kernel_wait() -> KernelWait {
    if OURS_INSTALLED.load(SeqCst) {
        if !handler_cannot_run() {
            return KernelWait::No;
        }
        // No count: the reaper thread takes nothing while a program handler
        // is installed, and a count left behind by siglongjmp would hold it
        // off for good once the program goes back to the default.
        settle();
        return KernelWait::Alone;
    }
    // The thread raises IN_FLIGHT before it looks at KERNEL_WAITERS, this
    // raises KERNEL_WAITERS before it looks at IN_FLIGHT: either the thread
    // leaves the exit to the kernel, or settle() waits until it is stored
    // and the caller's look at the store finds it.
    KERNEL_WAITERS.fetch_add(1, SeqCst);
    settle();
    KernelWait::Counted
}

/// Whether the shim's handler cannot run until this thread's wait returns:
/// glibc counts one thread (the shim's own bare thread blocks every signal)
/// and this thread blocks SIGCHLD, as a shell does around its wait for a
/// foreground job, and the kernel counts no other thread but the shim's own
/// (a thread made with a raw clone, which glibc does not count, could run
/// the handler). Polling there slept 100 ms per wait, as no handler could
/// wake it. A handler of another signal that unblocks SIGCHLD while it runs
/// inside the wait lets the shim's handler store an exit behind the wait's
/// back (a known difference in the README).
fn handler_cannot_run() -> bool {
    extern "C" {
        /// glibc (2.32 and later): nonzero while the process has one thread.
        static __libc_single_threaded: libc::c_char;
    }
    // SAFETY: a byte glibc writes only when it starts a thread.
    if unsafe { std::ptr::read_volatile(&raw const __libc_single_threaded) } == 0 {
        return false;
    }
    // SAFETY: sigset_t is plain data; a NULL set only reads this thread's mask.
    let blocked = unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) == 0
            && libc::sigismember(&mask, libc::SIGCHLD) == 1
    };
    blocked && kernel_threads().is_some_and(|n| n <= 1 + u32::from(THREAD_PID.load(SeqCst) == bare::getpid()))
}

/// The process's threads as the kernel counts them: the link count of
/// /proc/self/task is two more. Async-signal-safe; keeps errno.
fn kernel_threads() -> Option<u32> {
    let _errno = ErrnoGuard::new();
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid path; stat writes one struct stat.
    if unsafe { libc::stat(c"/proc/self/task".as_ptr(), &mut st) } != 0 {
        return None;
    }
    u32::try_from(st.st_nlink).ok()?.checked_sub(2)
}

/// After a wait [`enter_kernel_wait`] let into the kernel: the reaper thread,
/// if it is held off by such waits, reaps again. Keeps errno.
pub fn leave_kernel_wait(how: KernelWait) {
    if how != KernelWait::Counted {
        return;
    }
    KERNEL_WAITERS.fetch_sub(1, SeqCst);
    // The thread raises THREAD_HELD before it looks at KERNEL_WAITERS: either
    // it sees this wait gone, or this sees it held and wakes it.
    if THREAD_HELD.load(SeqCst) {
        let _errno = ErrnoGuard::new();
        CHANGED.fetch_add(1, SeqCst);
        bare::futex_wake_all(&CHANGED);
    }
}

/// In a forked child (it has one thread): no reap of the parent's reaper
/// thread is in flight and no other thread waits in the kernel.
/// Async-signal-safe.
pub fn forget_other_threads() {
    // Written only when not 0 already: each page a forked child writes costs
    // it a copy.
    if IN_FLIGHT.load(SeqCst) != 0 {
        IN_FLIGHT.store(0, SeqCst);
    }
    if KERNEL_WAITERS.load(SeqCst) != 0 {
        KERNEL_WAITERS.store(0, SeqCst);
    }
    if WAKE_SLEEPERS.load(SeqCst) != 0 {
        WAKE_SLEEPERS.store(0, SeqCst);
    }
    if THREAD_HELD.load(SeqCst) {
        THREAD_HELD.store(false, SeqCst);
    }
    for slot in &HANDLER_REAPS {
        if slot.load(SeqCst) != 0 {
            slot.store(0, SeqCst);
        }
    }
    if CHANGING.load(SeqCst) {
        forget_parent_writer();
    }
}

/// In a child forked while another thread of its parent changed the SIGCHLD
/// disposition: that thread is not here to finish. The record holds the old
/// disposition or the new one, whole; the kernel is set to match it, so the
/// child starts as if the fork came before or after that change.
/// Async-signal-safe.
#[cold]
fn forget_parent_writer() {
    let action = program_action();
    let kernel = kernel_action(&action);
    // SAFETY: sigaction is async-signal-safe; kernel is a valid action.
    unsafe { real::sigaction(libc::SIGCHLD, &kernel, std::ptr::null_mut()) };
    OURS_INSTALLED.store(wants_ours(&action), SeqCst);
    CHANGING.store(false, SeqCst);
}

/// Waits until no reap is between the kernel and the store. Async-signal-safe.
/// Never called from the shim's own handler, but it may be from a handler of
/// another signal that interrupted that handler's reap in this thread: that
/// reap cannot end until this returns, so it is not waited for.
pub fn settle() {
    if IN_FLIGHT.load(SeqCst) == 0 {
        return;
    }
    let me = this_thread();
    while IN_FLIGHT.load(SeqCst) != 0 {
        if HANDLER_REAPS.iter().any(|s| s.load(SeqCst) == me) {
            return;
        }
        // SAFETY: sched_yield has no arguments.
        unsafe { libc::sched_yield() };
    }
}

/// Counts the shim's reaps; each stored exit records its value from before
/// the reap. Only ever grows, also in a forked child (no reset: a larger
/// value there is as good).
static REAP_CLOCK: AtomicU64 = AtomicU64::new(1);

/// The reap clock now: read before the program makes a child, and given to
/// [`child_pid_given`] with the child's pid. Async-signal-safe.
pub fn reap_clock() -> u64 {
    REAP_CLOCK.load(SeqCst)
}

/// The program made child `pid` after reading `clock` from [`reap_clock`]:
/// the stored exits of older processes that had that pid no longer answer a
/// wait, `pidfd_open` or `kill` for the pid (without the shim, their zombies
/// would have kept the pid from being given out). An exit whose reap began
/// after `clock` is this child's own only if the kernel no longer has the
/// child: a reap that began after `clock` may also have freed the pid of an
/// older process while the kernel was making this child (a fork copying a
/// large address space, glibc's fork handlers, a SIGCHLD handler that ran
/// in this very thread before the fork system call restarted).
/// Async-signal-safe; keeps errno.
pub fn child_pid_given(pid: libc::pid_t, clock: u64) {
    if pid > 0 && STORE.supersede(pid, clock) && !supersede_if_newer_child(pid) {
        // The child was reaped already: its own exit is the newest kept.
        STORE.supersede_all_but_newest(pid, clock);
    }
}

/// If the kernel has a child `pid` now, the exits of `pid` stored before
/// this look are of older processes that had the pid: they no longer answer
/// a wait, `pidfd_open` or `kill` for it. Returns whether it has the child.
/// Also covers a child made by a path the stub does not see (raw `clone`,
/// `clone3` or `fork` system calls, `pidfd_spawn`, glibc's internal forks).
/// Async-signal-safe; keeps errno.
pub fn supersede_if_newer_child(pid: libc::pid_t) -> bool {
    // Exits stored from here on may be the child's own (it may exit and be
    // reaped right after the look).
    let bound = STORE.next_seq();
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
    let has_child = bare::waitid_info(libc::P_PID, pid as libc::id_t, options).is_ok();
    if has_child {
        STORE.supersede_below(pid, bound);
    }
    has_child
}

fn reap_into_store_now(pid: libc::pid_t, what: &str) {
    // Only an exit is taken: a ptrace stop waiting for the tracer is left alone.
    let peek = bare::waitid_info(libc::P_PID, pid as libc::id_t, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
    if !matches!(peek, Ok(Some(ref info)) if is_exit(info)) {
        return;
    }
    // A zombie child's process group is still there until it is reaped.
    let pgid = bare::getpgid(pid);
    // Read before the reap frees the pid: see [`child_pid_given`].
    let reaped = REAP_CLOCK.fetch_add(1, SeqCst);
    if let Ok(Some((info, usage))) = bare::waitid_usage(libc::P_PID, pid as libc::id_t, libc::WEXITED | libc::WNOHANG) {
        log::event(what, pid, Some(wstatus_from_siginfo(&info)));
        if let Some(dropped) = STORE.put(&StoredExit { info, usage }, pgid, reaped) {
            log::event("dropped the stored exit of", dropped, None);
        }
        // A child made while this exit was between the kernel and the store
        // may have got its pid, and its maker's child_pid_given did not find
        // the exit: the kernel having a child with the pid now says so.
        supersede_if_newer_child(pid);
    }
}

/// The shim's SIGCHLD handler.
///
/// Async-signal-safe: raw waitid, getpid, getpgid, write, atomics and the lock-free
/// store; errno is restored on return. With a program handler, calls it once
/// per exited child with that child's siginfo (SIGCHLD does not queue, so the
/// kernel may have run it once for many), and keeps the exit of any child the
/// handler left; with none (`all` mode, subreaper), reaps every exited child
/// into the store. A signal with no exited child reaches the program's handler
/// unchanged if it is a stop, a continue or a kill(); an exit whose child is
/// gone was already delivered by an earlier fan-out.
extern "C" fn on_sigchld(sig: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let _errno = ErrnoGuard::new();
    let action = program_action();
    let has_handler = !matches!(action.sa_sigaction, libc::SIG_DFL | libc::SIG_IGN);
    if !config::active() {
        // A vfork or raw clone child (see crate::owner): the shim's state is
        // not this process's; the signal goes to the program as is.
        if has_handler {
            call_program(&action, sig, info, context);
        }
        return;
    }
    // A one-shot handler is reset before it runs, as the kernel does: a
    // handler that installs itself again (System V style) keeps it.
    let one_shot = has_handler && action.sa_flags & libc::SA_RESETHAND != 0;
    let mut reset = false;
    let mut calls = 0usize;
    while calls < crate::store::CAPACITY {
        let Some(mut exited) = next_exited(info) else { break };
        // Stood down meanwhile (zreap's library, first used in another
        // thread while this handler ran): the child found may be one of the
        // library's, whose status its zwait must get. Read after the waitid
        // that found the child: while it is still false, the library has made
        // no child yet (it makes them after stand_down set it), so the child
        // found is not the library's and is the shim's to store.
        if STOOD_DOWN.load(SeqCst) {
            break;
        }
        // SAFETY: from a successful waitid.
        let pid = unsafe { exited.si_pid() };
        if has_handler {
            log::event("calling the program's SIGCHLD handler for", pid, None);
            remember_fanned(pid);
            // A zombie child's process group is still there until it is reaped.
            FANOUT_PGID.store(bare::getpgid(pid), SeqCst);
            FANOUT_PID.store(pid, SeqCst);
            if one_shot && !reset {
                reset = true;
                reset_one_shot(&action);
            }
            call_program(&action, sig, &mut exited, context);
            FANOUT_PID.store(0, SeqCst);
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
    // No exited child: pass the signal on as the kernel would, unless it
    // announces an exit a fan-out has already delivered (its signal stayed
    // pending while the handler ran): the handler's wait() would now block.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let already_delivered = !info.is_null()
        && matches!(unsafe { (*info).si_code }, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED)
        && was_fanned(unsafe { (*info).si_pid() });
    if one_shot && !reset {
        reset_one_shot(&action);
    }
    if has_handler && calls == 0 && !already_delivered {
        call_program(&action, sig, info, context);
    }
    wake_waiters();
}

/// A one-shot handler (SA_RESETHAND) is about to run: the program's
/// disposition is now the default (unless another thread is setting a new
/// one right now). Async-signal-safe.
fn reset_one_shot(action: &libc::sigaction) {
    // All signals blocked while CHANGING is held, as in set_program_action.
    zreap::sys::with_all_signals_blocked(|| {
        if CHANGING.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
            return;
        }
        let mut dfl = *action;
        dfl.sa_sigaction = libc::SIG_DFL;
        dfl.sa_flags &= !libc::SA_RESETHAND;
        write_program_action(&dfl);
        let kernel = kernel_action(&dfl);
        // SAFETY: sigaction is async-signal-safe; kernel is valid.
        unsafe { real::sigaction(libc::SIGCHLD, &kernel, std::ptr::null_mut()) };
        OURS_INSTALLED.store(wants_ours(&dfl), SeqCst);
        CHANGING.store(false, SeqCst);
    });
}

// ---------------------------------------------------------- the reaper thread

/// Bumped when the program's disposition changes, or it makes a child while
/// the reaper thread sleeps for want of children: the thread re-checks what
/// to do.
static CHANGED: AtomicU32 = AtomicU32::new(0);
/// Set when the program makes a child, cleared by the reaper thread at each
/// look: is the program busy making children?
static MADE_CHILD: AtomicBool = AtomicBool::new(false);
/// The process whose reaper thread runs (a forked child has none until it
/// needs one).
static THREAD_PID: AtomicI32 = AtomicI32::new(0);

/// True while the reaper thread sleeps because the process had no children.
static THREAD_IDLE: AtomicBool = AtomicBool::new(false);
/// True while the reaper thread sleeps because program threads wait in the
/// kernel (it leaves every exit to them until they leave).
static THREAD_HELD: AtomicBool = AtomicBool::new(false);

/// After the program made a child (fork, forkpty, posix_spawn, or the stub's
/// vfork, clone and _Fork), in process `me`
/// (the caller's): starts the reaper thread if the process needs one, and
/// tells it of the child. Ordinary context.
pub fn child_made(me: libc::pid_t) {
    if thread_wanted_in(&program_action(), me) {
        start_reaper_thread(me);
        if THREAD_PID.load(SeqCst) == me {
            note_new_child(me);
        } else {
            sweep_in_this_thread();
        }
    }
}

/// Where the reaper thread cannot start (RLIMIT_NPROC reached: the thread
/// counts as a process), the thread that makes a child reaps the exited ones
/// into the store, each time it makes one. glibc runs the fork handlers also
/// after a fork that failed, so a program at its limit that retries a fork
/// finds the slots of its exited children free. Signals are blocked
/// meanwhile: a handler of the program's that waited would otherwise wait
/// for these reaps (see [`settle`]). Ordinary context.
#[cold]
fn sweep_in_this_thread() {
    zreap::sys::with_all_signals_blocked(sweep);
}

/// Tells the reaper thread of process `me`, if it has one, a child was just
/// made. Only a thread asleep for want of children needs waking (otherwise it
/// waits in waitid or looks again soon, and the wake would cost a system call
/// per fork). Writes nothing when the flag is set already: after a fork, the
/// parent's first write to a page costs it a page fault.
fn note_new_child(me: libc::pid_t) {
    if THREAD_PID.load(SeqCst) != me {
        return;
    }
    if !MADE_CHILD.load(SeqCst) {
        MADE_CHILD.store(true, SeqCst);
    }
    // The thread raises THREAD_IDLE before it looks at MADE_CHILD: either it
    // sees the child, or this sees it asleep and wakes it.
    if THREAD_IDLE.load(SeqCst) {
        CHANGED.fetch_add(1, SeqCst);
        bare::futex_wake_all(&CHANGED);
    }
}

/// Starts this process's reaper thread if the disposition needs one, the
/// process has children, and none runs yet (a process that never makes a
/// child, like most programs a shell runs, never pays for a thread).
/// Ordinary context.
fn ensure_reaper_thread() {
    if thread_wanted(&program_action()) {
        start_reaper_thread(bare::getpid());
    }
}

/// [`ensure_reaper_thread`] once the thread is known to be wanted, in process
/// `me` (the caller's).
fn start_reaper_thread(me: libc::pid_t) {
    let previous = THREAD_PID.load(SeqCst);
    if previous == me {
        return;
    }
    let childless = bare::waitid_info(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        .is_err_and(|errno| errno == libc::ECHILD);
    if childless || THREAD_PID.compare_exchange(previous, me, SeqCst, SeqCst).is_err() {
        return;
    }
    if bare::spawn(reaper_on_bare_thread) {
        return;
    }
    // Every signal blocked, so no signal meant for the program is ever
    // delivered to it.
    if zreap::sys::spawn_pthread(reaper_on_pthread, 64 * 1024).is_err() {
        THREAD_PID.store(0, SeqCst);
    }
}

/// How long the reaper thread sleeps between looks while the program is
/// making children: an exit it does not wait for stays a zombie this long at
/// most. A process that forks and waits in a loop then wakes the thread once
/// per look instead of twice per child.
const LOOK_EVERY_MS: u64 = 20;

/// What a sweep of the exited children left.
enum Sweep {
    /// The process has no children.
    Childless,
    /// Live children, none of them exited.
    Children,
    /// Not the thread's to take now: a ptrace stop hides the exits behind it
    /// until the tracer takes it, or the program installed a handler.
    Stopped,
    /// A program thread waits in the kernel: the exits are left to it.
    KernelWaits,
}

/// Reaps every exited child into the store (WNOWAIT first, so nothing is
/// taken before the thread decides), unless a program thread waits in the
/// kernel.
fn sweep() -> Sweep {
    let mut reaped = false;
    let mut left = Sweep::Children;
    for _ in 0..crate::store::CAPACITY {
        let info = match bare::waitid_info(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) {
            Ok(Some(info)) => info,
            Ok(None) => break,
            Err(_) => {
                left = Sweep::Childless;
                break;
            }
        };
        // The program may have installed a handler meanwhile: it decides then.
        if !is_exit(&info) || !thread_wanted(&program_action()) {
            left = Sweep::Stopped;
            break;
        }
        // The thread raises IN_FLIGHT before it looks at KERNEL_WAITERS (see
        // enter_kernel_wait).
        IN_FLIGHT.fetch_add(1, SeqCst);
        if KERNEL_WAITERS.load(SeqCst) != 0 {
            IN_FLIGHT.fetch_sub(1, SeqCst);
            left = Sweep::KernelWaits;
            break;
        }
        // SAFETY: a siginfo filled by waitid.
        reap_into_store_now(unsafe { info.si_pid() }, "reaped");
        IN_FLIGHT.fetch_sub(1, SeqCst);
        reaped = true;
    }
    if reaped {
        wake_waiters();
    }
    left
}

/// The reaper thread, while the program's SIGCHLD is at its default: sweeps
/// the exited children into the store, then waits for the next exit in the
/// kernel (WNOWAIT) if the program made no child since the last sweep, else
/// sleeps [`LOOK_EVERY_MS`] (the program is busy making children and most
/// likely waits for them itself). With no children, it sleeps until one is
/// made.
///
/// Runs on a bare thread (zreap::sys::bare): everything it calls makes system calls
/// through `bare` alone and uses no errno, TLS, lock, allocation or libc
/// function, as in a signal handler.
fn reap_forever() -> ! {
    loop {
        let changed = CHANGED.load(SeqCst);
        if !thread_wanted(&program_action()) {
            // Once stood down for good: nothing will want the thread again.
            let timeout = if STOOD_DOWN.load(SeqCst) { None } else { Some(1000) };
            bare::futex_wait(&CHANGED, changed, timeout);
            continue;
        }
        let busy = MADE_CHILD.swap(false, SeqCst);
        match sweep() {
            Sweep::Childless => {
                THREAD_IDLE.store(true, SeqCst);
                // A child made since the sweep set MADE_CHILD, or saw the
                // thread idle and bumped CHANGED (the futex then returns at
                // once). Children made through paths the shim does not see
                // (raw clone/clone3/fork system calls, glibc's __fork,
                // __vfork and __clone, pidfd_spawn) wait for the timeout.
                if !MADE_CHILD.load(SeqCst) {
                    bare::futex_wait(&CHANGED, changed, Some(1000));
                }
                THREAD_IDLE.store(false, SeqCst);
            }
            // Until the tracer (or the program's handler) took the stop.
            Sweep::Stopped => {
                WAKE_SLEEPERS.fetch_add(1, SeqCst);
                bare::futex_wait(&WAKE, WAKE.load(SeqCst), Some(100));
                WAKE_SLEEPERS.fetch_sub(1, SeqCst);
            }
            Sweep::KernelWaits => {
                THREAD_HELD.store(true, SeqCst);
                // See leave_kernel_wait.
                if KERNEL_WAITERS.load(SeqCst) != 0 {
                    bare::futex_wait(&CHANGED, changed, Some(1000));
                }
                THREAD_HELD.store(false, SeqCst);
            }
            // Only a change of the program's disposition (which wakes
            // CHANGED) cuts the sleep short, not the children made meanwhile.
            Sweep::Children if busy => bare::futex_wait(&CHANGED, CHANGED.load(SeqCst), Some(LOOK_EVERY_MS)),
            Sweep::Children => {
                // Returns at the next exit (or ptrace stop) of any child.
                let _ = bare::waitid_info(libc::P_ALL, 0, libc::WEXITED | libc::WNOWAIT);
            }
        }
    }
}

/// The reaper on a bare thread, in a process that cannot change its
/// credentials (zreap::sys::bare).
extern "C" fn reaper_on_bare_thread(_: *mut c_void) -> c_int {
    reap_forever()
}

/// The reaper on a pthread, which glibc's `setuid` and friends keep in step.
extern "C" fn reaper_on_pthread(_: *mut c_void) -> *mut c_void {
    reap_forever()
}

#[cfg(test)]
mod tests {
    use super::set_child_times;

    #[test]
    fn child_times_land_where_libc_reads_them() {
        // SAFETY: siginfo_t and rusage are plain data; all-zero is valid.
        let (mut info, mut usage): (libc::siginfo_t, libc::rusage) = unsafe { std::mem::zeroed() };
        usage.ru_utime = libc::timeval { tv_sec: 2, tv_usec: 500_000 };
        usage.ru_stime = libc::timeval { tv_sec: 0, tv_usec: 30_000 };
        set_child_times(&mut info, &usage);
        // SAFETY: getauxval reads the auxiliary vector.
        let hz = unsafe { libc::getauxval(libc::AT_CLKTCK) } as libc::clock_t;
        assert_eq!(hz, super::USER_HZ as libc::clock_t);
        // SAFETY: a siginfo laid out for SIGCHLD.
        let (utime, stime) = unsafe { (info.si_utime(), info.si_stime()) };
        assert_eq!((utime, stime), (hz * 5 / 2, hz * 3 / 100));
        // SAFETY: as above.
        assert_eq!(unsafe { (info.si_pid(), info.si_status()) }, (0, 0), "nothing else written");
    }
}
