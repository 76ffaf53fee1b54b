//! The `live` worker: the Rust side of the scaling, latency and syscall rows,
//! with the same driver, arguments and output as the C peers
//! (`bench/peers/peer.h`, which describes the modes):
//!
//! ```text
//! zreap-bench __worker live LIB MODE N ITERS WARMUP TINY TINY_BLOCK
//! ```
//!
//! Also prints fds= (open fds once the N live children are made) and faults=
//! (the process's minor page faults over the timed iterations). With
//! [`DRIVEN`] set, each line read from stdin runs one more block of WARMUP +
//! ITERS iterations and prints its faults= and samples=, until end of file;
//! the driver alternates such blocks between two workers alive at once. LIB says
//! how children are started and how their exits are waited for
//! (see [`Lib::new`]). Only zreap's public API is used.

use crate::workers::raise_nofile;
use libc::{c_char, c_int, pid_t};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::io::Write as _;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

extern "C" {
    static environ: *const *mut c_char;
}

type Res<T> = Result<T, String>;

/// The environment variable that makes a worker run blocks on demand.
pub const DRIVEN: &str = "ZREAP_BENCH_DRIVEN";

fn errno_str(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// How children are started.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    Zspawn,
    Zfork,
    Fork,
    PosixSpawn,
    Std,
    Tokio,
}

/// How an exit reaches the waiter.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// zreap::wait(pid).
    Zreap,
    /// poll(zreap::reap_fd()) + zreap::reap_all until the pid is reported.
    ReapFd(RawFd),
    /// waitpid(pid, 0).
    Waitpid,
    /// The textbook SA_SIGINFO handler's table, woken by its self-pipe.
    Sigchld,
    Std,
    Tokio,
}

enum Handle {
    Std(std::process::Child),
    Tokio(tokio::process::Child),
}

struct Lib {
    /// The live children's starter and waiter.
    live: (Start, Wait),
    /// The measured child's starter and waiter.
    measured: (Start, Wait),
    rt: Option<tokio::runtime::Runtime>,
    handles: HashMap<pid_t, Handle>,
    /// Exits reap_all reported before their wait asked for them.
    reported: HashSet<pid_t>,
}

impl Lib {
    /// `zspawn-own`, `zspawn-all`, `zfork-own`, `zfork-all`: install(OWN) or
    /// install(empty), zreap::spawn or zreap::fork, zreap::wait. `zfd-own`:
    /// install(OWN), zreap::spawn, poll(reap_fd) + reap_all. `host-tracked`:
    /// install(OWN), live children from zreap::spawn, the measured one from the
    /// host's posix_spawn + waitpid. `host-tracked-fork`: the same, the
    /// measured one from the host's fork() + waitpid; `host-fork`: that beside
    /// untracked posix_spawn children; `-thread` after either: the host has a
    /// thread of its own, asleep. `posix_spawn`: posix_spawn + waitpid;
    /// `fork`: fork() + waitpid.
    /// `sigchld`: posix_spawn, exits reaped by a textbook SIGCHLD handler.
    /// `std`: std::process::Command. `tokio`: tokio::process::Command on a
    /// current-thread runtime.
    fn new(name: &str) -> Res<Lib> {
        let install = |flags| zreap::install(flags).map_err(|e| format!("zreap::install: {e}"));
        let own = zreap::InstallFlags::OWN;
        let all = zreap::InstallFlags::empty();
        let both = |s, w| ((s, w), (s, w));
        let (live, measured) = match name {
            "zspawn-own" | "zspawn-all" | "zfork-own" | "zfork-all" => {
                install(if name.ends_with("-own") { own } else { all })?;
                both(if name.starts_with("zspawn") { Start::Zspawn } else { Start::Zfork }, Wait::Zreap)
            }
            "zfd-own" => {
                install(own)?;
                let fd = zreap::reap_fd().map_err(|e| format!("zreap::reap_fd: {e}"))?.as_raw_fd();
                both(Start::Zspawn, Wait::ReapFd(fd))
            }
            "host-tracked" => {
                install(own)?;
                ((Start::Zspawn, Wait::Zreap), (Start::PosixSpawn, Wait::Waitpid))
            }
            "host-tracked-fork" | "host-tracked-fork-thread" => {
                install(own)?;
                ((Start::Zspawn, Wait::Zreap), (Start::Fork, Wait::Waitpid))
            }
            "host-fork" | "host-fork-thread" => ((Start::PosixSpawn, Wait::Waitpid), (Start::Fork, Wait::Waitpid)),
            "posix_spawn" => both(Start::PosixSpawn, Wait::Waitpid),
            "fork" => both(Start::Fork, Wait::Waitpid),
            "sigchld" => {
                sigchld::install()?;
                both(Start::PosixSpawn, Wait::Sigchld)
            }
            "std" => both(Start::Std, Wait::Std),
            "tokio" => both(Start::Tokio, Wait::Tokio),
            other => return Err(format!("unknown library {other}")),
        };
        if name.ends_with("-thread") {
            std::thread::spawn(|| loop {
                std::thread::park();
            });
        }
        let rt = if live.0 == Start::Tokio {
            Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("tokio runtime: {e}"))?,
            )
        } else {
            None
        };
        Ok(Lib { live, measured, rt, handles: HashMap::new(), reported: HashSet::new() })
    }

    /// Starts `prog` (with `stdin` on fd 0, or inheriting it).
    fn start(&mut self, how: Start, prog: &CStr, stdin: Option<RawFd>) -> Res<pid_t> {
        match how {
            Start::Zspawn => {
                // SAFETY: the caller keeps the fd open for the call.
                let fd = stdin.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
                let opts = zreap::SpawnOptions { stdin: fd, ..Default::default() };
                zreap::spawn(prog, &[prog], None, &opts).map_err(|e| format!("zreap::spawn: {e}"))
            }
            Start::Zfork => {
                // SAFETY: the child only makes async-signal-safe system calls.
                match unsafe { zreap::fork(&zreap::SpawnOptions::default()) } {
                    Ok(zreap::ForkResult::Child) => forked_child(stdin),
                    Ok(zreap::ForkResult::Parent(pid)) => Ok(pid),
                    Err(e) => Err(format!("zreap::fork: {e}")),
                }
            }
            Start::Fork => {
                // SAFETY: the child only makes async-signal-safe system calls.
                match unsafe { libc::fork() } {
                    -1 => Err(errno_str("fork")),
                    0 => forked_child(stdin),
                    pid => Ok(pid),
                }
            }
            Start::PosixSpawn => posix_spawn(prog, stdin),
            Start::Std | Start::Tokio => {
                let path = std::ffi::OsStr::from_bytes(prog.to_bytes());
                let stdio = match stdin {
                    Some(fd) => std::process::Stdio::from(dup_cloexec(fd)?),
                    None => std::process::Stdio::inherit(),
                };
                if how == Start::Std {
                    let child = std::process::Command::new(path)
                        .stdin(stdio)
                        .spawn()
                        .map_err(|e| format!("Command::spawn: {e}"))?;
                    let pid = child.id() as pid_t;
                    self.handles.insert(pid, Handle::Std(child));
                    Ok(pid)
                } else {
                    let rt = self.rt.as_ref().ok_or("no tokio runtime")?;
                    let _guard = rt.enter();
                    let child = tokio::process::Command::new(path)
                        .stdin(stdio)
                        .spawn()
                        .map_err(|e| format!("tokio Command::spawn: {e}"))?;
                    let pid = child.id().ok_or("tokio child has no pid")? as pid_t;
                    self.handles.insert(pid, Handle::Tokio(child));
                    Ok(pid)
                }
            }
        }
    }

    /// Waits until the exit of `pid` is delivered, and checks it is a clean one.
    fn wait(&mut self, how: Wait, pid: pid_t) -> Res<()> {
        let ok = match how {
            Wait::Zreap => zreap::wait(pid).map_err(|e| format!("zreap::wait({pid}): {e}"))?.status.success(),
            Wait::ReapFd(fd) => {
                let mut clean = true;
                while !self.reported.remove(&pid) {
                    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, 1000) };
                    let reported = &mut self.reported;
                    zreap::reap_all(|e| {
                        clean &= e.status.success();
                        reported.insert(e.pid);
                    })
                    .map_err(|e| format!("zreap::reap_all: {e}"))?;
                }
                clean
            }
            Wait::Waitpid => {
                let mut status = 0;
                // SAFETY: status is a valid out-pointer.
                while unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
                    if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                        return Err(errno_str(&format!("waitpid({pid})")));
                    }
                }
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
            }
            Wait::Sigchld => sigchld::wait(pid)?,
            Wait::Std | Wait::Tokio => match self.handles.remove(&pid) {
                Some(Handle::Std(mut c)) => c.wait().map_err(|e| format!("Child::wait: {e}"))?.success(),
                Some(Handle::Tokio(mut c)) => {
                    let rt = self.rt.as_ref().ok_or("no tokio runtime")?;
                    rt.block_on(c.wait()).map_err(|e| format!("tokio Child::wait: {e}"))?.success()
                }
                None => return Err(format!("no handle for {pid}")),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(format!("child {pid} did not exit cleanly"))
        }
    }
}

/// A zreap::fork child: blocks reading `stdin` (every other fd closed, so
/// it holds no pipe's write end) or exits at once.
fn forked_child(stdin: Option<RawFd>) -> ! {
    // SAFETY: plain system calls in a fork child.
    unsafe {
        if let Some(fd) = stdin {
            libc::dup2(fd, 0);
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            let mut b = 0u8;
            while libc::read(0, (&mut b as *mut u8).cast(), 1) == -1 && *libc::__errno_location() == libc::EINTR {}
        }
        libc::_exit(0)
    }
}

fn posix_spawn(prog: &CStr, stdin: Option<RawFd>) -> Res<pid_t> {
    let argv: [*const c_char; 2] = [prog.as_ptr(), std::ptr::null()];
    let mut pid = 0;
    // SAFETY: fa is initialised before use and destroyed after; argv is
    // null-terminated; environ is the process's.
    let rc = unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        if let Some(fd) = stdin {
            libc::posix_spawn_file_actions_adddup2(&mut fa, fd, 0);
        }
        let rc =
            libc::posix_spawn(&mut pid, prog.as_ptr(), &fa, std::ptr::null(), argv.as_ptr().cast(), environ.cast());
        libc::posix_spawn_file_actions_destroy(&mut fa);
        rc
    };
    if rc != 0 {
        return Err(format!("posix_spawn: {}", std::io::Error::from_raw_os_error(rc)));
    }
    Ok(pid)
}

fn dup_cloexec(fd: RawFd) -> Res<OwnedFd> {
    // SAFETY: fcntl on an fd the caller keeps open.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new == -1 {
        return Err(errno_str("F_DUPFD_CLOEXEC"));
    }
    // SAFETY: new is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn cloexec_pipe() -> Res<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(errno_str("pipe2"));
    }
    Ok((fds[0], fds[1]))
}

fn close(fd: RawFd) {
    // SAFETY: the caller owns fd.
    unsafe { libc::close(fd) };
}

/// Waits until `pid` sleeps (state S: blocked in its read()).
fn wait_sleeping(pid: pid_t) -> Res<()> {
    let path = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        if stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) == Some("S") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("child {pid} never blocked in read()"));
        }
        std::thread::yield_now();
    }
}

/// The minor page faults of this process (all its threads) so far.
fn process_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid; getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid rusage to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_minflt
}

fn mark(path: &CStr) {
    // SAFETY: path is a valid C string; the call is only a marker for strace.
    unsafe { libc::access(path.as_ptr(), libc::F_OK) };
}

/// One iteration of `mode`: its timed part. `marked`: put the strace markers
/// around it (mode `syscalls`, after the warm-up).
fn one(lib: &mut Lib, mode: &str, marked: bool, tiny: &CStr, tiny_block: &CStr) -> Res<Duration> {
    let measured = lib.measured;
    Ok(match mode {
        "cycle" => {
            let t0 = Instant::now();
            let pid = lib.start(measured.0, tiny, None)?;
            lib.wait(measured.1, pid)?;
            t0.elapsed()
        }
        "start" => {
            let (br, bw) = cloexec_pipe()?;
            let t0 = Instant::now();
            let pid = lib.start(measured.0, tiny_block, Some(br))?;
            let ns = t0.elapsed();
            close(br);
            close(bw);
            lib.wait(measured.1, pid)?;
            ns
        }
        _ => {
            let (br, bw) = cloexec_pipe()?;
            let pid = lib.start(measured.0, tiny_block, Some(br))?;
            close(br);
            wait_sleeping(pid)?;
            let strace = mode == "syscalls" && marked;
            if strace {
                mark(c"/zreap-bench-mark-begin");
            }
            let t0 = Instant::now();
            close(bw);
            lib.wait(measured.1, pid)?;
            let ns = t0.elapsed();
            if strace {
                mark(c"/zreap-bench-mark-end");
            }
            ns
        }
    })
}

/// `live LIB MODE N ITERS WARMUP TINY TINY_BLOCK`.
pub fn run(args: &[String]) -> Res<i32> {
    let [lib, mode, n, iters, warmup, tiny, tiny_block] = args else {
        return Err("usage: live LIB MODE N ITERS WARMUP TINY TINY_BLOCK".into());
    };
    let parse = |s: &String| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
    let (n, iters, warmup) = (parse(n)?, parse(iters)?, parse(warmup)?);
    let cstr = |s: &String| CString::new(s.as_str()).map_err(|e| e.to_string());
    let (tiny, tiny_block) = (cstr(tiny)?, cstr(tiny_block)?);
    let mode = mode.as_str();
    if !["start", "cycle", "latency", "syscalls"].contains(&mode) {
        return Err(format!("unknown mode {mode}"));
    }
    raise_nofile();
    let mut lib = Lib::new(lib)?;
    let live = lib.live;
    let (ar, aw) = cloexec_pipe()?;
    let t0 = Instant::now();
    let mut pids = Vec::with_capacity(n);
    for _ in 0..n {
        pids.push(lib.start(live.0, &tiny_block, Some(ar))?);
    }
    println!("make_ns={}", t0.elapsed().as_nanos());
    let fds = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?.count();
    println!("fds={fds}");
    let mut block = || -> Res<()> {
        let mut samples = Vec::with_capacity(iters);
        let mut faults = 0;
        for i in 0..warmup + iters {
            if i == warmup {
                faults = process_faults();
            }
            let ns = one(&mut lib, mode, i >= warmup, &tiny, &tiny_block)?;
            if i >= warmup {
                samples.push(ns.as_nanos() as u64);
            }
        }
        // The block's iterations only: not the live children's starts or waits.
        println!("faults={}", process_faults() - faults);
        let s: Vec<String> = samples.iter().map(u64::to_string).collect();
        println!("samples={}", s.join(","));
        std::io::stdout().flush().map_err(|e| format!("stdout: {e}"))
    };
    if std::env::var_os(DRIVEN).is_some() {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).map_err(|e| format!("stdin: {e}"))? > 0 {
            block()?;
            line.clear();
        }
    } else {
        block()?;
    }
    close(aw);
    for pid in pids {
        lib.wait(live.1, pid)?;
    }
    close(ar);
    let tids: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("/proc/self/task: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    println!("tids={}", tids.join(","));
    println!("zombies={}", crate::workers::count_zombie_children());
    Ok(0)
}

/// The textbook all-children reaper: an SA_SIGINFO SIGCHLD handler that
/// loops waitpid(-1, WNOHANG), stores each (pid, status) in a table and
/// writes a byte to a self-pipe; a waiter sleeps on the pipe.
mod sigchld {
    use super::*;

    const CAP: usize = 1 << 16;
    static EXITS: [AtomicI64; CAP] = [const { AtomicI64::new(0) }; CAP];
    static HEAD: AtomicUsize = AtomicUsize::new(0);
    static PIPE_W: AtomicI64 = AtomicI64::new(-1);
    static PIPE_R: AtomicI64 = AtomicI64::new(-1);

    extern "C" fn handler(_sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
        // SAFETY: only async-signal-safe calls; errno is saved and restored.
        unsafe {
            let errno = *libc::__errno_location();
            let mut status = 0;
            loop {
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                let i = HEAD.load(Ordering::Relaxed);
                EXITS[i % CAP].store((i64::from(pid) << 32) | i64::from(status as u32), Ordering::Relaxed);
                HEAD.store(i + 1, Ordering::Release);
            }
            let b = 1u8;
            libc::write(PIPE_W.load(Ordering::Relaxed) as c_int, (&b as *const u8).cast(), 1);
            *libc::__errno_location() = errno;
        }
    }

    pub(super) fn install() -> Res<()> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == -1 {
            return Err(errno_str("pipe2"));
        }
        PIPE_R.store(i64::from(fds[0]), Ordering::Relaxed);
        PIPE_W.store(i64::from(fds[1]), Ordering::Relaxed);
        // SAFETY: sa is fully initialised; the handler is async-signal-safe.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut())
        };
        if rc == -1 {
            return Err(errno_str("sigaction"));
        }
        Ok(())
    }

    /// Consumes the table until `pid` is in it; sleeps in poll on the pipe.
    pub(super) fn wait(pid: pid_t) -> Res<bool> {
        thread_local! {
            static SEEN: std::cell::RefCell<(usize, HashMap<pid_t, c_int>)> = Default::default();
        }
        let fd = PIPE_R.load(Ordering::Relaxed) as c_int;
        SEEN.with_borrow_mut(|(tail, seen)| loop {
            let head = HEAD.load(Ordering::Acquire);
            while *tail < head {
                let v = EXITS[*tail % CAP].load(Ordering::Relaxed);
                seen.insert((v >> 32) as pid_t, v as u32 as c_int);
                *tail += 1;
            }
            if let Some(status) = seen.remove(&pid) {
                return Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            }
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd; buf has room for the bytes read.
            unsafe {
                libc::poll(&mut pfd, 1, 1000);
                let mut buf = [0u8; 64];
                while libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
            }
        })
    }
}
