//! Running system calls inside another process with ptrace, the way reptyr
//! does: stop one thread of it (`PTRACE_SEIZE` + `PTRACE_INTERRUPT`), point
//! its registers at a system-call instruction already in its text, let it run
//! that one instruction (`PTRACE_SYSCALL` to its entry, then to its exit),
//! read the result, put every register back and detach.
//!
//! The registers are restored while the thread is stopped inside the kernel's
//! signal path, where it stopped when interrupted: a system call it was
//! blocked in (`-ERESTARTSYS` and the like in the result register) is then
//! restarted by the kernel as after any stop. A signal that arrives while the
//! injected calls run is held back and delivered, with its original
//! `siginfo`, before detaching. The caller must block SIGCHLD: the stops of
//! the tracee are waited for with `sigtimedwait`.

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Why working on the tracee failed.
#[derive(Debug)]
pub enum Error {
    /// `PTRACE_SEIZE` was refused (EPERM).
    Denied,
    /// The thread exited (or was killed) while being worked on.
    Gone,
    /// Anything else, in words.
    Failed(String),
}

fn sys(what: &'static str) -> impl Fn(Errno) -> Error {
    move |e| if e == Errno::ESRCH { Error::Gone } else { Error::Failed(format!("{what}: {e}")) }
}

/// How long one stop may take to come. Every stop after the first follows a
/// non-blocking call at once; the first waits for the thread to leave the
/// kernel (a short uninterruptible sleep).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The x86_64 registers and system-call conventions.
#[cfg(target_arch = "x86_64")]
mod arch {
    pub type Regs = libc::user_regs_struct;

    /// `syscall`.
    pub const SYSCALL_INSN: &[u8] = &[0x0f, 0x05];

    /// The code segment of 64-bit user code; a 32-bit process has another.
    const USER_CS: u64 = 0x33;

    pub fn check(r: &Regs) -> Result<(), String> {
        if r.cs == USER_CS {
            Ok(())
        } else {
            Err(format!("a 32-bit process (cs {:#x}) is not supported", r.cs))
        }
    }

    /// Where the system call the thread stopped in was issued, if it
    /// stopped in one (`syscall` is 2 bytes before the return address).
    pub fn syscall_site(r: &Regs) -> Option<u64> {
        ((r.orig_rax as i64) >= 0).then(|| r.rip.wrapping_sub(2))
    }

    /// `saved` with the call `nr(args)` at `insn`; `orig_rax` -1 so that the
    /// kernel's restart logic leaves the injected state alone.
    pub fn call(saved: &Regs, insn: u64, nr: i64, args: [u64; 4]) -> Regs {
        let mut r = *saved;
        r.rip = insn;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        (r.rdi, r.rsi, r.rdx, r.r10) = (args[0], args[1], args[2], args[3]);
        r
    }

    pub fn result(r: &Regs) -> i64 {
        r.rax as i64
    }

    /// The registers to restore. A call that answered the interrupt with
    /// EINTR instead of a restart code (epoll_wait, sigtimedwait: ptrace(2),
    /// BUGS) is restarted the way the kernel restarts the others, when
    /// `restart_eintr` (no signal waiting to be delivered would interrupt it).
    pub fn restored(saved: &Regs, restart_eintr: bool) -> Regs {
        let mut r = *saved;
        if restart_eintr && (r.orig_rax as i64) >= 0 && r.rax as i64 == -(libc::EINTR as i64) {
            r.rax = r.orig_rax;
            r.rip = r.rip.wrapping_sub(2);
        }
        r
    }

    /// Nothing to do on x86_64: `orig_rax` is in the restored registers.
    pub fn forget_syscall(_tid: nix::unistd::Pid) -> Result<(), nix::errno::Errno> {
        Ok(())
    }
}

/// The aarch64 registers and system-call conventions. UNTESTED: compiled for
/// aarch64, never run on one. When a thread stops in the signal path the
/// kernel has already prepared a restart (pc back on the `svc`, x0 its first
/// argument), so the restored registers re-issue the call; a sleep restarts
/// with its full duration and EINTR answers are left as they are.
#[cfg(target_arch = "aarch64")]
mod arch {
    pub type Regs = libc::user_regs_struct;

    /// `svc #0`.
    pub const SYSCALL_INSN: &[u8] = &[0x01, 0x00, 0x00, 0xd4];

    /// `PSR_MODE32_BIT`: the thread runs 32-bit code.
    const MODE32: u64 = 0x10;

    /// `NT_ARM_SYSTEM_CALL`: the regset holding the current system-call number.
    const NT_ARM_SYSTEM_CALL: libc::c_int = 0x404;

    pub fn check(r: &Regs) -> Result<(), String> {
        if r.pstate & MODE32 == 0 {
            Ok(())
        } else {
            Err("a 32-bit process is not supported".to_string())
        }
    }

    pub fn syscall_site(r: &Regs) -> Option<u64> {
        Some(r.pc)
    }

    pub fn call(saved: &Regs, insn: u64, nr: i64, args: [u64; 4]) -> Regs {
        let mut r = *saved;
        r.pc = insn;
        r.regs[8] = nr as u64;
        r.regs[..4].copy_from_slice(&args);
        r
    }

    pub fn result(r: &Regs) -> i64 {
        r.regs[0] as i64
    }

    pub fn restored(saved: &Regs, _restart_eintr: bool) -> Regs {
        *saved
    }

    /// Sets the thread's current system call to none, so that the kernel
    /// does not apply restart logic to the restored registers.
    pub fn forget_syscall(tid: nix::unistd::Pid) -> Result<(), nix::errno::Errno> {
        let mut nr: libc::c_int = -1;
        let mut iov =
            libc::iovec { iov_base: (&mut nr as *mut libc::c_int).cast(), iov_len: std::mem::size_of::<libc::c_int>() };
        // SAFETY: PTRACE_SETREGSET reads iov_len bytes from iov_base, a live c_int.
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_SETREGSET,
                tid.as_raw(),
                NT_ARM_SYSTEM_CALL as usize,
                &mut iov as *mut libc::iovec,
            )
        };
        if rc < 0 {
            Err(nix::errno::Errno::last())
        } else {
            Ok(())
        }
    }
}

/// What the tracee stopped for.
enum Stop {
    /// A system-call entry or exit (`SIGTRAP | 0x80` with `PTRACE_O_TRACESYSGOOD`).
    Syscall,
    /// `PTRACE_EVENT_STOP`: the interrupt, or a group stop.
    Event,
    /// A signal about to be delivered.
    Signal(i32),
}

/// A thread stopped by `PTRACE_SEIZE` + `PTRACE_INTERRUPT`. Call
/// [`Tracee::release`] to put it back; dropping it without doing so leaves
/// the detach to the kernel when zreap exits.
pub struct Tracee {
    pid: i32,
    tid: Pid,
    saved: arch::Regs,
    /// A `syscall`/`svc` instruction in the tracee's text.
    insn: u64,
    /// The registers hold an injected call, not `saved`.
    dirty: bool,
    /// Signals that arrived while injected calls ran, delivered on release.
    held: Vec<libc::siginfo_t>,
    /// An EINTR in `saved` may be turned into a restart (see `arch::restored`).
    restart_eintr: bool,
}

/// Resumes `tid` with a raw signal number (nix's `Signal` has no real-time signals).
fn resume(request: libc::c_uint, tid: Pid, sig: i32) -> Result<(), Error> {
    // SAFETY: a restarting ptrace request with an integer data argument.
    let rc = unsafe { libc::ptrace(request, tid.as_raw(), 0usize, sig as usize) };
    if rc < 0 {
        Err(sys("ptrace (resume)")(Errno::last()))
    } else {
        Ok(())
    }
}

/// Waits for the next stop of `tid`: `waitpid(WNOHANG)`, then SIGCHLD
/// (blocked by the caller) with a deadline.
fn wait_stop(tid: Pid) -> Result<Stop, Error> {
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut chld = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set it is given.
    unsafe { libc::sigemptyset(chld.as_mut_ptr()) };
    // SAFETY: the set was initialized just above.
    let mut chld = unsafe { chld.assume_init() };
    // SAFETY: sigaddset on an initialized set.
    unsafe { libc::sigaddset(&mut chld, libc::SIGCHLD) };
    loop {
        let mut status = 0;
        // SAFETY: waitpid on one pid with a valid status pointer.
        let r = unsafe { libc::waitpid(tid.as_raw(), &mut status, libc::WNOHANG | libc::__WALL) };
        if r < 0 {
            return Err(sys("waitpid")(Errno::last()));
        }
        if r > 0 {
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                return Err(Error::Gone);
            }
            let sig = libc::WSTOPSIG(status);
            return Ok(if sig == libc::SIGTRAP | 0x80 {
                Stop::Syscall
            } else if status >> 16 != 0 {
                Stop::Event
            } else {
                Stop::Signal(sig)
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Failed(format!("no ptrace stop within {}s", STOP_TIMEOUT.as_secs())));
        }
        let ts =
            libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long };
        // SAFETY: sigtimedwait with a valid set and timeout and no info buffer.
        unsafe { libc::sigtimedwait(&chld, std::ptr::null_mut(), &ts) };
    }
}

/// The first `SYSCALL_INSN` in an executable mapping of `pid`, read through
/// `/proc/PID/mem` (open to its tracer).
fn find_syscall_insn(pid: i32) -> Result<u64, Error> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| Error::Failed(format!("maps: {e}")))?;
    let mem = File::open(format!("/proc/{pid}/mem")).map_err(|e| Error::Failed(format!("mem: {e}")))?;
    let n = arch::SYSCALL_INSN.len();
    let mut buf = vec![0u8; 1 << 20];
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
        // [vsyscall] can be executed only at its entry points.
        if !perms.contains('x') || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else { continue };
        let mut at = start;
        while at < end {
            let len = buf.len().min((end - at) as usize);
            let Ok(got) = mem.read_at(&mut buf[..len], at) else { break };
            if got < n {
                break;
            }
            // Instructions are n-byte aligned on aarch64; any offset on x86_64.
            let step = if n == 4 { 4 } else { 1 };
            if let Some(i) = (0..=got - n).step_by(step).find(|&i| &buf[i..i + n] == arch::SYSCALL_INSN) {
                return Ok(at + i as u64);
            }
            // Overlap by one instruction minus a byte, in case it straddles chunks.
            at += (got - (n - 1)) as u64;
        }
    }
    Err(Error::Failed("no system-call instruction in its executable mappings".to_string()))
}

/// Bit of signal `sig` in the `Sig*` masks of /proc.
fn bit(sig: i32) -> u64 {
    1u64.checked_shl((sig - 1) as u32).unwrap_or(0)
}

/// Whether a signal pending for thread `tid` of `pid` and not blocked, or one
/// of `held`, would interrupt a blocking call once delivered: one with a
/// handler, or whose default action stops or ends the process. Ignored
/// signals (SIG_IGN, or SIG_DFL for CHLD, CONT, URG, WINCH) would not: the
/// kernel discards them at once for a thread nobody traces.
fn signal_interrupts(pid: i32, tid: i32, held: &[libc::siginfo_t]) -> bool {
    let Ok(text) = crate::procfs::read(std::path::Path::new(&format!("/proc/{pid}/task/{tid}/status"))) else {
        return true;
    };
    let st = crate::procfs::parse_status(&text);
    let pending = (st.sig_pnd.unwrap_or(0) | st.shd_pnd.unwrap_or(0)) & !st.sig_blk.unwrap_or(0);
    let held = held.iter().fold(0, |m, si| m | bit(si.si_signo));
    let caught = st.sig_cgt.unwrap_or(0);
    let ignored_by_default =
        [libc::SIGCHLD, libc::SIGCONT, libc::SIGURG, libc::SIGWINCH].iter().fold(0, |m, &s| m | bit(s));
    let ignored = st.sig_ign.unwrap_or(0) | (ignored_by_default & !caught);
    (pending | held) & !ignored != 0
}

/// Whether thread `tid` of `pid` has exited: gone, or a zombie (`Z`/`X`)
/// whose exit nobody has collected yet.
fn exited(pid: i32, tid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) {
        Err(_) => true,
        Ok(text) => text.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with(['Z', 'X'])),
    }
}

/// Whether the word at `addr` in the tracee starts with `SYSCALL_INSN`.
fn is_syscall_insn(tid: Pid, addr: u64) -> bool {
    ptrace::read(tid, addr as ptrace::AddressType)
        .is_ok_and(|word| word.to_ne_bytes()[..arch::SYSCALL_INSN.len()] == *arch::SYSCALL_INSN)
}

impl Tracee {
    /// Seizes thread `tid` of process `pid` and stops it. `restart_eintr`:
    /// see `arch::restored` (false when the process was stopped already, so
    /// that an EINTR a job-control stop caused is left as it is).
    pub fn attach(pid: i32, tid: i32, restart_eintr: bool) -> Result<Tracee, Error> {
        let tid = Pid::from_raw(tid);
        ptrace::seize(tid, ptrace::Options::PTRACE_O_TRACESYSGOOD).map_err(|e| match e {
            // The kernel refuses a thread that has exited (a zombie not yet
            // reaped) with EPERM too: that is no permission problem.
            Errno::EPERM if exited(pid, tid.as_raw()) => Error::Gone,
            Errno::EPERM => Error::Denied,
            e => sys("PTRACE_SEIZE")(e),
        })?;
        ptrace::interrupt(tid).map_err(sys("PTRACE_INTERRUPT"))?;
        loop {
            match wait_stop(tid)? {
                Stop::Event => break,
                // Arrived before the interrupt: delivered now, nothing changed yet.
                Stop::Signal(sig) => resume(libc::PTRACE_CONT, tid, sig)?,
                Stop::Syscall => resume(libc::PTRACE_CONT, tid, 0)?,
            }
        }
        let mut t = Tracee {
            pid,
            tid,
            saved: ptrace::getregs(tid).map_err(sys("PTRACE_GETREGS"))?,
            insn: 0,
            dirty: false,
            held: Vec::new(),
            restart_eintr,
        };
        arch::check(&t.saved).map_err(Error::Failed)?;
        t.insn = match arch::syscall_site(&t.saved) {
            Some(site) if is_syscall_insn(tid, site) => site,
            _ => find_syscall_insn(pid)?,
        };
        Ok(t)
    }

    /// Resumes to the next system-call stop, holding back signals and
    /// passing over interrupt and group stops.
    fn run_to_syscall_stop(&mut self) -> Result<(), Error> {
        resume(libc::PTRACE_SYSCALL, self.tid, 0)?;
        loop {
            match wait_stop(self.tid)? {
                Stop::Syscall => return Ok(()),
                Stop::Event => {}
                Stop::Signal(_) => self.held.push(ptrace::getsiginfo(self.tid).map_err(sys("PTRACE_GETSIGINFO"))?),
            }
            resume(libc::PTRACE_SYSCALL, self.tid, 0)?;
        }
    }

    /// Makes the tracee execute system call `nr` with `args`; its raw result
    /// (`-errno` on failure).
    pub fn call(&mut self, nr: i64, args: [u64; 4]) -> Result<i64, Error> {
        ptrace::setregs(self.tid, arch::call(&self.saved, self.insn, nr, args)).map_err(sys("PTRACE_SETREGS"))?;
        self.dirty = true;
        self.run_to_syscall_stop()?; // entry
        self.run_to_syscall_stop()?; // exit
        Ok(arch::result(&ptrace::getregs(self.tid).map_err(sys("PTRACE_GETREGS"))?))
    }

    /// Restores the registers, delivers the held signals and detaches;
    /// returns how many signals were held.
    pub fn release(mut self) -> Result<usize, Error> {
        let tid = self.tid;
        let held = self.held.len();
        if !self.dirty {
            return ptrace::detach(tid, None).map(|()| 0).map_err(sys("PTRACE_DETACH"));
        }
        let interrupts = signal_interrupts(self.pid, tid.as_raw(), &self.held);
        let regs = arch::restored(&self.saved, self.restart_eintr && !interrupts);
        ptrace::setregs(tid, regs).map_err(sys("PTRACE_SETREGS"))?;
        arch::forget_syscall(tid).map_err(sys("PTRACE_SETREGSET"))?;
        // Queue the held signals again, one at a time: a standard signal
        // queued while one of its number is pending is discarded, so the next
        // is queued only once the previous one is at its delivery stop (taken
        // off the queue). Each gets its original siginfo there.
        let pid = self.pid;
        let requeue = |si: &libc::siginfo_t| {
            // SAFETY: tgkill with integer arguments.
            if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid.as_raw(), si.si_signo) } < 0 {
                Err(sys("tgkill")(Errno::last()))
            } else {
                Ok(())
            }
        };
        if let Some(si) = self.held.first() {
            requeue(si)?;
        }
        // Back into the signal path with the saved registers: the kernel
        // restarts an interrupted call when the thread leaves it.
        ptrace::interrupt(tid).map_err(sys("PTRACE_INTERRUPT"))?;
        resume(libc::PTRACE_CONT, tid, 0)?;
        loop {
            let sig = match wait_stop(tid)? {
                Stop::Signal(sig) => {
                    if self.held.first().is_some_and(|si| si.si_signo == sig) {
                        let si = self.held.remove(0);
                        ptrace::setsiginfo(tid, &si).map_err(sys("PTRACE_SETSIGINFO"))?;
                        if let Some(next) = self.held.first() {
                            requeue(next)?;
                        }
                    }
                    sig
                }
                Stop::Event | Stop::Syscall => 0,
            };
            if self.held.is_empty() {
                return resume(libc::PTRACE_DETACH, tid, sig).map(|()| held);
            }
            resume(libc::PTRACE_CONT, tid, sig)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exited;

    #[test]
    fn exited_tells_a_zombie_and_a_gone_thread_from_a_live_one() {
        let me = std::process::id() as i32;
        assert!(!exited(me, me), "this thread runs");
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        // SAFETY: a zeroed siginfo_t is a valid out-pointer for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with WNOWAIT only waits; the child stays a zombie.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
        assert!(exited(pid, pid), "a zombie has exited");
        assert!(exited(me, pid), "no thread of ours has the child's id");
        child.wait().expect("reap true");
    }
}
