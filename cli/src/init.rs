//! `zreap init` (and `zreap run --init`): a container init. It starts CMD,
//! forwards every signal it can catch, reaps every child with zreap's own
//! reaper (`install(SUBREAPER | NO_HANDLER)`, the reap fd, `reap_all`) and
//! exits with CMD's status.
//!
//! The init blocks every signal and reads them from a signalfd: the loop runs
//! in ordinary context. Synchronous faults of the init's own code (SIGSEGV,
//! SIGBUS, SIGFPE, SIGILL) are forced by the kernel through the block and kill
//! it; the same signals sent with kill(2) are forwarded.
//!
//! The child side of the fork only makes async-signal-safe system calls on
//! memory prepared before the fork.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use zreap::{ForkResult, InstallFlags, Signal, SpawnFlags, SpawnOptions};

/// Where CMD runs and where forwarded signals go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// CMD in its own process group (it gets the terminal); signals to CMD
    /// only (tini's default).
    Child,
    /// CMD in its own process group; signals to the group (tini `-g`).
    Group,
    /// CMD in a new session with the init's terminal as its controlling
    /// terminal; signals to its group (dumb-init's default).
    Setsid,
    /// CMD stays in the init's process group; signals to CMD only, except
    /// those the terminal sent to the whole group, which CMD already got
    /// (dumb-init `--single-child`).
    Single,
}

pub struct InitConfig {
    /// The prefix of messages (`zreap init`, `tini`, `[dumb-init]`).
    pub name: String,
    pub mode: Mode,
    /// Set in CMD's environment (the shim).
    pub env: Vec<(OsString, OsString)>,
    /// The init's own parent-death signal.
    pub parent_death: Option<Signal>,
    /// CMD exit codes reported as 0.
    pub remap: Vec<i32>,
    /// Signal rewrites (from, to); to = 0 drops; the last for a signal wins.
    pub rewrite: Vec<(i32, i32)>,
    /// The exit code when CMD cannot be executed, from the errno.
    pub exec_failure: fn(i32) -> i32,
    /// On CMD's exit, TERM then KILL to what is left of its group or session.
    pub kill_group: bool,
    pub grace: Duration,
    pub warn_reaped: bool,
    pub verbose: u8,
    /// Empty: pause until SIGINT or SIGTERM.
    pub cmd: Vec<OsString>,
}

impl InitConfig {
    /// The defaults of every peer: the job-control rewrites of `mode`, no
    /// remap or kill of leftovers, a shell's exec failure codes, a 5 s
    /// grace, quiet.
    pub fn new(name: &str, mode: Mode, cmd: Vec<OsString>) -> InitConfig {
        InitConfig {
            name: name.into(),
            mode,
            env: Vec::new(),
            parent_death: None,
            remap: Vec::new(),
            rewrite: job_control_rewrites(mode),
            exec_failure: shell_exec_failure,
            kill_group: false,
            grace: Duration::from_secs(5),
            warn_reaped: false,
            verbose: 0,
            cmd,
        }
    }
}

/// The rewrites of TSTP, TTIN and TTOU in `mode`. `Setsid`: forwarded as
/// STOP (dumb-init). `Child`, `Group`: TTIN and TTOU dropped, as tini and
/// catatonit ignore them.
pub fn job_control_rewrites(mode: Mode) -> Vec<(i32, i32)> {
    match mode {
        Mode::Setsid => [libc::SIGTSTP, libc::SIGTTOU, libc::SIGTTIN].map(|s| (s, libc::SIGSTOP)).to_vec(),
        Mode::Child | Mode::Group => vec![(libc::SIGTTIN, 0), (libc::SIGTTOU, 0)],
        Mode::Single => Vec::new(),
    }
}

/// A shell's exit code for a command it cannot execute: 127 not found, 126 otherwise.
pub fn shell_exec_failure(errno: i32) -> i32 {
    if errno == libc::ENOENT {
        127
    } else {
        126
    }
}

/// The exit code for an exit status: the code, or 128 + signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

fn sigset_empty() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; all-zero is valid (and then emptied).
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local set.
    unsafe { libc::sigemptyset(&mut set) };
    set
}

/// What the init was started with and gives back to CMD.
struct Inherited {
    mask: libc::sigset_t,
    chld_ignored: bool,
}

/// Blocks every signal (the library's watcher thread, started later,
/// inherits the mask) and returns a signalfd for them and what CMD gets back.
fn block_signals() -> Result<(RawFd, Inherited), String> {
    let mut old = sigset_empty();
    let mut all = sigset_empty();
    // SAFETY: a valid pointer to a local set.
    unsafe { libc::sigfillset(&mut all) };
    // SAFETY: valid pointers to local sets.
    if unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) } != 0 {
        return Err("pthread_sigmask failed".into());
    }
    // SAFETY: sigaction is plain data; all-zero is valid.
    let mut chld: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query of SIGCHLD into a valid struct.
    unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut chld) };
    let chld_ignored = chld.sa_sigaction == libc::SIG_IGN;
    if chld_ignored {
        // With SIGCHLD ignored the kernel reaps by itself and statuses are
        // lost: the init needs the default (CMD gets SIG_IGN back).
        // SAFETY: setting SIG_DFL, no handler.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    }
    // Rust's runtime ignores SIGPIPE before main (and cannot tell what it
    // was): the init forwards it and CMD gets the default.
    // SAFETY: setting SIG_DFL, no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: a valid set; a new fd.
    let fd = unsafe { libc::signalfd(-1, &all, libc::SFD_CLOEXEC) };
    if fd == -1 {
        return Err(format!("signalfd: {}", std::io::Error::last_os_error()));
    }
    Ok((fd, Inherited { mask: old, chld_ignored }))
}

/// One signal read from the signalfd: (number, si_code).
fn read_signal(fd: RawFd) -> Option<(i32, i32)> {
    // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reading at most `size` bytes into the struct.
    let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
    (n == size as isize).then_some((info.ssi_signo as i32, info.ssi_code))
}

/// Waits until the signalfd or the reap fd is readable, or `timeout`.
fn poll2(sfd: RawFd, rfd: RawFd, timeout: Option<Duration>) {
    let mut fds = [
        libc::pollfd { fd: sfd, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: rfd, events: libc::POLLIN, revents: 0 },
    ];
    let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
    // SAFETY: two valid pollfds.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
}

/// The fds ≥ 3 open now (inherited): closed in the init once CMD has them.
fn inherited_fds() -> Vec<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let listed: Vec<RawFd> =
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&fd| fd >= 3).collect();
    // The directory's own fd was listed too, and is closed now.
    // SAFETY: fcntl(F_GETFD) only queries the fd.
    listed.into_iter().filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1).collect()
}

/// Everything the child needs, allocated before the fork.
struct Exec {
    candidates: Vec<CString>,
    argv: Vec<CString>,
    /// `/bin/sh` and its argv for a candidate that is a script without
    /// `#!`, as execvp(3) runs it: `/bin/sh`, the candidate (set in the
    /// child), CMD's arguments, NULL.
    sh: CString,
    sh_argv: Vec<*const libc::c_char>,
    /// fd 0 is the controlling terminal of a session the init leads (a
    /// container's init): `--setsid` may take it from that session.
    take_tty: bool,
    env: Vec<CString>,
    /// Index in `env` of `LISTEN_PID`, and the buffer its value is written
    /// to in the child: `LISTEN_PID=` and room for the digits and NUL.
    listen_pid: Option<(usize, Vec<u8>)>,
}

impl Exec {
    fn new(cmd: &[OsString], extra: &[(OsString, OsString)], me: i32) -> Result<Exec, String> {
        let cstr = |b: &[u8]| CString::new(b).map_err(|_| "an argument holds a NUL byte".to_string());
        let argv = cmd.iter().map(|a| cstr(a.as_bytes())).collect::<Result<Vec<_>, _>>()?;
        let prog = cmd[0].as_bytes();
        let candidates = if prog.contains(&b'/') {
            vec![cstr(prog)?]
        } else {
            let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
            path.as_bytes()
                .split(|&b| b == b':')
                .map(|dir| {
                    let dir = if dir.is_empty() { b".".as_slice() } else { dir };
                    cstr(&[dir, b"/", prog].concat())
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut vars: Vec<(OsString, OsString)> =
            std::env::vars_os().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).collect();
        vars.extend(extra.iter().cloned());
        let mut env = Vec::new();
        let mut listen_pid = None;
        for (k, v) in vars {
            if k == "LISTEN_PID" && v.as_bytes() == me.to_string().as_bytes() {
                // Filled with CMD's pid in the child.
                listen_pid = Some((env.len(), [b"LISTEN_PID=".as_slice(), &[0; 21]].concat()));
                env.push(cstr(b"LISTEN_PID=")?);
            } else {
                env.push(cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
            }
        }
        let sh = cstr(b"/bin/sh")?;
        let sh_argv = [sh.as_ptr(), std::ptr::null()]
            .into_iter()
            .chain(argv[1..].iter().map(|a| a.as_ptr()))
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // SAFETY: tcgetsid on fd 0; it fails unless fd 0 is our controlling terminal.
        let take_tty = unsafe { libc::tcgetsid(0) } == me;
        Ok(Exec { candidates, argv, sh, sh_argv, take_tty, env, listen_pid })
    }
}

/// Writes `n` in decimal at `buf[start..]`, then a NUL. Async-signal-safe.
fn write_decimal(buf: &mut [u8], start: usize, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[start + i] = digits[len - 1 - i];
    }
    buf[start + len] = 0;
}

/// The child between fork and exec: terminal, signal mask, exec. Only
/// async-signal-safe calls, on memory prepared before the fork. Never returns.
fn child(
    exec: &mut Exec,
    argv: &[*const libc::c_char],
    envp: &mut [*const libc::c_char],
    mode: Mode,
    init_pgrp: i32,
    inherited: &Inherited,
    err_fd: RawFd,
) -> ! {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    match mode {
        Mode::Setsid => {
            // Take the terminal the init had as controlling terminal (fails
            // harmlessly without one, or when it is another session's). When
            // it is the controlling terminal of the session the init leads,
            // only a process with CAP_SYS_ADMIN may take it over (argument
            // 1); never from a session the init does not lead: the caller's
            // shell would lose its terminal.
            // SAFETY: an ioctl on fd 0 with an integer argument.
            if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 && exec.take_tty {
                // SAFETY: as above.
                unsafe { libc::ioctl(0, libc::TIOCSCTTY, 1) };
            }
        }
        Mode::Child | Mode::Group => {
            // Hand the terminal to CMD's new group before exec, if the init's
            // group had it: SIGTTOU is blocked here, so a background group may.
            // SAFETY: tcgetpgrp on fd 0.
            if unsafe { libc::tcgetpgrp(0) } == init_pgrp {
                // SAFETY: tcsetpgrp on fd 0 to our own group.
                unsafe { libc::tcsetpgrp(0, me) };
            }
        }
        Mode::Single => {}
    }
    if let Some((i, buf)) = exec.listen_pid.as_mut() {
        // The buffer was allocated before the fork with room for the digits.
        write_decimal(buf, 11, me as u32);
        envp[*i] = buf.as_ptr().cast();
    }
    if inherited.chld_ignored {
        // SAFETY: setting SIG_IGN, no handler.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    }
    // SAFETY: a valid set; this thread is the whole process now.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &inherited.mask, std::ptr::null_mut()) };
    // execvp(3)'s search: the next candidate after these errors, the error
    // at once after any other; EACCES is reported if any candidate gave it.
    let mut errno = libc::ENOENT;
    for path in &exec.candidates {
        // SAFETY: NUL-terminated path, argv and envp arrays prepared before the fork.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        // SAFETY: reading errno.
        let mut e = unsafe { *libc::__errno_location() };
        if e == libc::ENOEXEC {
            exec.sh_argv[1] = path.as_ptr();
            // SAFETY: as above; sh_argv was prepared before the fork.
            unsafe { libc::execve(exec.sh.as_ptr(), exec.sh_argv.as_ptr(), envp.as_ptr()) };
            // SAFETY: reading errno.
            e = unsafe { *libc::__errno_location() };
        }
        match e {
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {
                if errno != libc::EACCES {
                    errno = e;
                }
            }
            libc::EACCES => errno = e,
            _ => {
                errno = e;
                break;
            }
        }
    }
    let bytes = errno.to_ne_bytes();
    // SAFETY: writing 4 bytes from a local array to the error pipe.
    unsafe { libc::write(err_fd, bytes.as_ptr().cast(), 4) };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(127) }
}

/// (pgrp, session) of a process, from /proc.
fn pgrp_session(pid: i32) -> Option<(char, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((f.first()?.chars().next()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// Live (not zombie) processes in the process group or session `id`, other than us.
fn leftovers(id: i32) -> Vec<i32> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| matches!(pgrp_session(pid), Some((s, g, sid)) if s != 'Z' && (g == id || sid == id)))
        .collect()
}

struct Loop<'a> {
    cfg: &'a InitConfig,
    sfd: RawFd,
    rfd: RawFd,
    child: i32,
    status: Option<std::process::ExitStatus>,
}

impl Loop<'_> {
    fn debug(&self, level: u8, msg: impl FnOnce() -> String) {
        if self.cfg.verbose >= level {
            eprintln!("{}: {}", self.cfg.name, msg());
        }
    }

    fn reap(&mut self) {
        let (child, warn) = (self.child, self.cfg.warn_reaped);
        let mut status = None;
        let mut orphans = Vec::new();
        if let Err(e) = zreap::reap_all(|exit| {
            if exit.pid == child {
                status = Some(exit.status);
            } else {
                orphans.push(exit);
            }
        }) {
            eprintln!("{}: reap: {e}", self.cfg.name);
        }
        for exit in orphans {
            if warn {
                eprintln!("{}: reaped orphan {}: {}", self.cfg.name, exit.pid, exit.status);
            } else {
                self.debug(2, || format!("reaped {}: {}", exit.pid, exit.status));
            }
        }
        if status.is_some() {
            self.debug(1, || format!("CMD (pid {child}) ended: {}", status.unwrap()));
            self.status = status;
        }
    }

    /// Forwards (or drops) one signal read from the signalfd; in `Setsid`
    /// and `Single` modes TSTP, TTIN and TTOU suspend the init too, as
    /// dumb-init does in both its modes: a shell waiting for the init sees
    /// the job stop. SIGCONT resumes it.
    fn forward(&self, sig: i32, code: i32) {
        if sig == libc::SIGCHLD {
            return;
        }
        self.send(sig, code);
        if matches!(self.cfg.mode, Mode::Setsid | Mode::Single)
            && [libc::SIGTSTP, libc::SIGTTOU, libc::SIGTTIN].contains(&sig)
        {
            self.debug(1, || "suspending self".into());
            // SAFETY: stopping ourselves.
            unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
        }
    }

    /// Sends one signal on to CMD or its group, rewritten, unless dropped.
    fn send(&self, sig: i32, code: i32) {
        let cfg = self.cfg;
        let terminal = [libc::SIGINT, libc::SIGQUIT, libc::SIGTSTP, libc::SIGWINCH].contains(&sig);
        if cfg.mode == Mode::Single && code == libc::SI_KERNEL && terminal {
            self.debug(1, || format!("not forwarding SIG{}: the terminal sent it to CMD too", name(sig)));
            return;
        }
        let to = cfg.rewrite.iter().rev().find(|(from, _)| *from == sig).map_or(sig, |&(_, to)| to);
        if to == 0 {
            self.debug(1, || format!("dropping SIG{}", name(sig)));
            return;
        }
        let target = match cfg.mode {
            Mode::Group | Mode::Setsid => -self.child,
            Mode::Child | Mode::Single => self.child,
        };
        self.debug(1, || format!("forwarding SIG{} as SIG{} to {target}", name(sig), name(to)));
        // SAFETY: kill with a pid or group of ours and a valid signal.
        unsafe { libc::kill(target, to) };
    }

    /// Serves signals and exits until CMD has ended (or, paused, until
    /// SIGINT or SIGTERM).
    fn run(&mut self, pause: bool) {
        loop {
            self.reap();
            if self.status.is_some() {
                return;
            }
            poll2(self.sfd, self.rfd, None);
            while let Some((sig, code)) = self.readable_signal() {
                if pause {
                    if sig == libc::SIGINT || sig == libc::SIGTERM {
                        return;
                    }
                } else {
                    self.forward(sig, code);
                }
            }
        }
    }

    fn readable_signal(&self) -> Option<(i32, i32)> {
        let mut pfd = libc::pollfd { fd: self.sfd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        (unsafe { libc::poll(&mut pfd, 1, 0) } == 1).then(|| read_signal(self.sfd)).flatten()
    }

    /// TERM, then KILL after the grace period, to CMD's leftover group or session.
    fn kill_group(&mut self) {
        let id = self.child;
        if self.cfg.mode == Mode::Single {
            return;
        }
        let mut left = leftovers(id);
        if left.is_empty() {
            return;
        }
        self.debug(1, || format!("sending SIGTERM to what is left of CMD's group: {left:?}"));
        for &pid in &left {
            // SAFETY: kill with a pid and a valid signal.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + self.cfg.grace;
        while !left.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                self.debug(1, || format!("sending SIGKILL to {left:?}"));
                for &pid in &left {
                    // SAFETY: kill with a pid and SIGKILL.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                break;
            }
            poll2(self.sfd, self.rfd, Some((deadline - now).min(Duration::from_millis(50))));
            while self.readable_signal().is_some() {}
            self.reap();
            left = leftovers(id);
        }
        // Reap what died (the killed may take a moment to become zombies).
        let until = Instant::now() + Duration::from_secs(5);
        while !leftovers_all(id).is_empty() && Instant::now() < until {
            poll2(self.sfd, self.rfd, Some(Duration::from_millis(50)));
            self.reap();
        }
    }
}

/// Every process (zombies too) of the group or session `id`.
fn leftovers_all(id: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| matches!(pgrp_session(pid), Some((_, g, sid)) if g == id || sid == id))
        .collect()
}

fn name(sig: i32) -> String {
    Signal::new(sig).map_or_else(|| sig.to_string(), Signal::name)
}

/// Runs the init; returns its exit code.
pub fn init(cfg: &InitConfig) -> i32 {
    let fds = inherited_fds();
    let (sfd, inherited) = match block_signals() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: {e}", cfg.name);
            return 1;
        }
    };
    if let Some(sig) = cfg.parent_death {
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig.as_raw() as libc::c_ulong, 0, 0, 0) };
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != parent {
            // The parent died before the prctl: the signal is due now.
            // SAFETY: signalling ourselves.
            unsafe { libc::kill(libc::getpid(), sig.as_raw()) };
        }
    }
    if let Err(e) = zreap::install(InstallFlags::SUBREAPER | InstallFlags::NO_HANDLER) {
        eprintln!("{}: cannot install the reaper: {e}", cfg.name);
        return 1;
    }
    let rfd = match zreap::reap_fd() {
        Ok(fd) => fd.as_raw_fd(),
        Err(e) => {
            eprintln!("{}: reap fd: {e}", cfg.name);
            return 1;
        }
    };
    let mut lp = Loop { cfg, sfd, rfd, child: 0, status: None };
    if cfg.cmd.is_empty() {
        lp.run(true);
        return 0;
    }
    match start(cfg, &inherited) {
        Ok(pid) => lp.child = pid,
        Err((e, code)) => {
            eprintln!("{}: {}: {e}", cfg.name, cfg.cmd[0].to_string_lossy());
            return code;
        }
    }
    lp.debug(1, || format!("started CMD as pid {}", lp.child));
    for fd in fds {
        // SAFETY: closing an fd inherited by the init, which CMD now has.
        unsafe { libc::close(fd) };
    }
    if let Err(e) = std::env::set_current_dir("/") {
        lp.debug(1, || format!("chdir /: {e}"));
    }
    lp.run(false);
    if cfg.kill_group {
        lp.kill_group();
    }
    lp.reap();
    let code = exit_code(lp.status.expect("the loop ends with CMD's status")) % 256;
    if cfg.remap.contains(&code) {
        0
    } else {
        code
    }
}

/// Forks and execs CMD; the error and exit code when it could not start.
fn start(cfg: &InitConfig, inherited: &Inherited) -> Result<i32, (std::io::Error, i32)> {
    let fail = |e: String| (std::io::Error::new(std::io::ErrorKind::InvalidInput, e), 2);
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut exec = Exec::new(&cfg.cmd, &cfg.env, me).map_err(fail)?;
    let argv: Vec<*const libc::c_char> =
        exec.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let mut envp: Vec<*const libc::c_char> =
        exec.env.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let mut pipe = [0; 2];
    // SAFETY: a valid array of two fds.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err((std::io::Error::last_os_error(), 1));
    }
    // SAFETY: getpgrp has no preconditions.
    let init_pgrp = unsafe { libc::getpgrp() };
    let flags = match cfg.mode {
        Mode::Child | Mode::Group => SpawnFlags::SETPGROUP,
        Mode::Setsid => SpawnFlags::SETSID,
        Mode::Single => SpawnFlags::empty(),
    };
    // SAFETY: the child runs `child`, which makes only async-signal-safe calls.
    let forked = unsafe { zreap::fork(&SpawnOptions { flags, ..Default::default() }) };
    let pid = match forked {
        Ok(ForkResult::Child) => child(&mut exec, &argv, &mut envp, cfg.mode, init_pgrp, inherited, pipe[1]),
        Ok(ForkResult::Parent(pid)) => pid,
        Err(e) => return Err((e, 1)),
    };
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(pipe[1]) };
    let mut buf = [0u8; 4];
    // SAFETY: reading at most 4 bytes into a local array (EOF at the exec).
    let n = unsafe { libc::read(pipe[0], buf.as_mut_ptr().cast(), 4) };
    // SAFETY: closing the read end.
    unsafe { libc::close(pipe[0]) };
    if n == 4 {
        let errno = i32::from_ne_bytes(buf);
        let _ = zreap::wait(pid);
        return Err((std::io::Error::from_raw_os_error(errno), (cfg.exec_failure)(errno)));
    }
    Ok(pid)
}
