//! `zreap run`: run a command under the preload shim, or as a minimal init.

use crate::locate;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// Signals the init forwards to the command.
pub const FORWARDED: [i32; 7] =
    [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

/// How long the init keeps reaping leftover children after the command exited.
const DRAIN: Duration = Duration::from_secs(2);

pub struct RunConfig {
    pub reap: &'static str,
    pub pdeathsig: Option<zreap::Signal>,
    pub subreaper: bool,
    pub init: bool,
    pub group: bool,
    pub cmd: Vec<OsString>,
}

/// The environment changes for the command: the shim appended to
/// `LD_PRELOAD` and the `ZREAP_*` settings.
pub fn shim_env(shim: &OsStr, cfg: &RunConfig) -> Vec<(OsString, OsString)> {
    let preload = match std::env::var_os("LD_PRELOAD") {
        Some(old) if !old.is_empty() => {
            let mut v = old;
            v.push(":");
            v.push(shim);
            v
        }
        _ => shim.to_os_string(),
    };
    let mut env = vec![("LD_PRELOAD".into(), preload), ("ZREAP_REAP".into(), cfg.reap.into())];
    if let Some(sig) = cfg.pdeathsig {
        env.push(("ZREAP_PDEATHSIG".into(), sig.as_raw().to_string().into()));
    }
    if cfg.subreaper {
        env.push(("ZREAP_SUBREAPER".into(), "1".into()));
    }
    env
}

pub fn run(cfg: RunConfig) -> i32 {
    let shim = match locate::shim() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("zreap run: the preload shim is missing: {e}");
            return 2;
        }
    };
    let env = shim_env(shim.as_os_str(), &cfg);
    // SAFETY: getpid has no preconditions.
    let pid1 = unsafe { libc::getpid() } == 1;
    if cfg.init || pid1 {
        return init(&cfg, &env);
    }
    let err = std::process::Command::new(&cfg.cmd[0]).args(&cfg.cmd[1..]).envs(env).exec();
    eprintln!("zreap run: {}: {err}", cfg.cmd[0].to_string_lossy());
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Blocks the forwarded signals and SIGCHLD in this thread (the only one:
/// called before anything creates a thread) and returns a signalfd for them.
fn block_signals() -> Result<i32, String> {
    // SAFETY: sigset operations on a local, zero-initialised set; signalfd and
    // pthread_sigmask with valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("pthread_sigmask failed".to_string());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd == -1 {
            return Err(format!("signalfd: {}", std::io::Error::last_os_error()));
        }
        Ok(fd)
    }
}

/// The exit code for a wait status: the exit status, or 128 + signal.
fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Reaps every exited child. Returns the status of `main` if it was among
/// them, and whether any child is left.
fn reap(main: i32) -> (Option<i32>, bool) {
    let mut main_status = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r > 0 {
            if r == main {
                main_status = Some(status);
            }
            continue;
        }
        // 0: children left, none exited; -1/ECHILD: none left.
        return (main_status, r == 0);
    }
}

/// Reads one signal from the signalfd, waiting at most `timeout` (None: forever).
fn next_signal(fd: i32, timeout: Option<Duration>) -> Option<i32> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r <= 0 {
        return None;
    }
    // SAFETY: reading one signalfd_siginfo into a zeroed struct of that size.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let n = libc::read(fd, &mut info as *mut _ as *mut libc::c_void, std::mem::size_of::<libc::signalfd_siginfo>());
        (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize).then_some(info.ssi_signo as i32)
    }
}

/// The minimal init: spawn the command, forward signals, reap everything,
/// exit with the command's status.
fn init(cfg: &RunConfig, env: &[(OsString, OsString)]) -> i32 {
    let sfd = match block_signals() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("zreap run: {e}");
            return 2;
        }
    };
    // SAFETY: getpid and prctl with integer arguments.
    unsafe {
        if libc::getpid() != 1 && libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) != 0 {
            eprintln!("zreap run: prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());
        }
    }

    let mut command = zreap::Command::new(&cfg.cmd[0]);
    command.args(&cfg.cmd[1..]);
    for (key, value) in env {
        command.env(key, value);
    }
    if cfg.group {
        command.process_group();
    }
    let child = match command.spawn() {
        Ok(child) => child.pid(),
        Err(e) => {
            eprintln!("zreap run: {}: {e}", cfg.cmd[0].to_string_lossy());
            return if e.raw_os_error() == Some(libc::ENOENT) { 127 } else { 126 };
        }
    };
    if cfg.group {
        // Give the terminal to the command's group if we hold it.
        // SAFETY: plain calls on fd 0.
        unsafe {
            if libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() {
                libc::tcsetpgrp(0, child);
            }
        }
    }

    let target = if cfg.group { -child } else { child };
    let status = loop {
        let Some(sig) = next_signal(sfd, None) else { continue };
        if sig == libc::SIGCHLD {
            if let (Some(status), _) = reap(child) {
                break status;
            }
        } else {
            // SAFETY: kill with a pid (or group) and a valid signal.
            unsafe { libc::kill(target, sig) };
        }
    };

    // The command is gone; collect what is left for a short while (orphans it
    // left behind are ours: we are a subreaper or PID 1).
    let deadline = Instant::now() + DRAIN;
    loop {
        let (_, left) = reap(child);
        if !left {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            eprintln!("zreap run: the command exited; leaving children that still run");
            break;
        }
        next_signal(sfd, Some(deadline - now));
    }
    exit_code(status)
}
