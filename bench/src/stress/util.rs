//! What every scenario needs: a seeded random generator, expected statuses,
//! /proc counting (children, zombies, fds), the async-signal-safe body of a
//! forked child, subreaping, and reading a child's line with a deadline.

use libc::{c_int, pid_t};
use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, String>;

/// splitmix64: small, seedable, good enough to pick fates.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EAGAIN => "EAGAIN",
        libc::EINTR => "EINTR",
        libc::ECHILD => "ECHILD",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOMEM => "ENOMEM",
        libc::EINVAL => "EINVAL",
        libc::EEXIST => "EEXIST",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// The status a child must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Code(i32),
    Signal(i32),
}

impl Expect {
    pub fn matches(self, status: c_int) -> bool {
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        let sig = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
        match self {
            Expect::Code(c) => code == Some(c),
            Expect::Signal(s) => sig == Some(s),
        }
    }
}

/// A waitpid status in words.
pub fn status_str(status: c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status:#x}")
    }
}

/// The body of a forked child: optionally ignore SIGINT, sleep `usec`, exit
/// with `code`. Async-signal-safe (raw system calls only), for children of
/// multi-threaded processes.
pub fn child_body(code: i32, usec: u64, ignore_sigint: bool) -> ! {
    // SAFETY: sigaction, sigprocmask, nanosleep and _exit are async-signal-safe
    // system calls on stack structs.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = if ignore_sigint { libc::SIG_IGN } else { libc::SIG_DFL };
        libc::sigaction(libc::SIGINT, &act, std::ptr::null_mut());
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        sleep_raw(usec);
        libc::_exit(code)
    }
}

/// Starts a child that sleeps `usec` and exits `code`: `kind` 0 zspawn'ed
/// (exec'ing this program), 1 zfork'ed, else a plain fork(). Its pid, or the
/// errno.
pub fn start_child(kind: u64, exe: &CString, code: i32, usec: u64) -> Result<pid_t, i32> {
    match kind {
        0 => crate::zr::spawn(&child_argv(exe, code, usec, false), 0, None),
        // SAFETY: the child only runs child_body (raw system calls).
        1 => match unsafe { crate::zr::fork() } {
            Ok(0) => child_body(code, usec, false),
            r => r,
        },
        // SAFETY: as above.
        _ => match unsafe { libc::fork() } {
            0 => child_body(code, usec, false),
            -1 => Err(errno()),
            pid => Ok(pid),
        },
    }
}

/// nanosleep for `usec` microseconds, resumed after signals. Async-signal-safe.
pub fn sleep_raw(usec: u64) {
    let mut ts =
        libc::timespec { tv_sec: (usec / 1_000_000) as libc::time_t, tv_nsec: ((usec % 1_000_000) * 1000) as _ };
    // SAFETY: nanosleep with valid timespecs; on EINTR it leaves the rest in ts.
    while unsafe { libc::nanosleep(&ts, &mut ts) } == -1 {}
}

/// This program, for exec'd children (`zreap-stress __child CODE USEC IGNINT`).
pub fn self_exe() -> CString {
    let path = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    CString::new(path.into_os_string().into_encoded_bytes()).expect("exe path has no NUL")
}

/// argv of an exec'd child that behaves like [`child_body`].
pub fn child_argv(exe: &CString, code: i32, usec: u64, ignore_sigint: bool) -> Vec<CString> {
    let num = |v: String| CString::new(v).expect("digits");
    vec![
        exe.clone(),
        c"__child".to_owned(),
        num(code.to_string()),
        num(usec.to_string()),
        num((ignore_sigint as u8).to_string()),
    ]
}

/// `zreap-stress __child CODE USEC IGNINT`: run [`child_body`].
pub fn child_main(args: &[String]) -> ! {
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    child_body(num(0) as i32, num(1), num(2) != 0)
}

/// A process's (state, ppid, pgrp, session) from `/proc/PID/stat`.
pub fn proc_stat(pid: pid_t) -> Option<(char, pid_t, pid_t, pid_t)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let mut num = || f.next()?.parse::<pid_t>().ok();
    Some((state, num()?, num()?, num()?))
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<pid_t>().ok()).collect()
}

/// (pid, state) of every process whose parent is `ppid`.
pub fn children_of(ppid: pid_t) -> Vec<(pid_t, char)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| match proc_stat(pid) {
            Some((state, p, _, _)) if p == ppid => Some((pid, state)),
            _ => None,
        })
        .collect()
}

/// The children of this process as the kernel lists them per thread
/// (`/proc/self/task/*/children`), zombies included.
pub fn task_children() -> Vec<pid_t> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<pid_t>>())
        .collect()
}

/// Checks that this process has no child left, zombie or not, by both views.
/// In a pid namespace whose /proc is the outer one, pids in /proc are not
/// ours: only the per-thread children lists count then.
pub fn no_children_left() -> Res<()> {
    let me = my_pid();
    let proc_is_ours =
        std::fs::read_link("/proc/self").ok().and_then(|p| p.to_str()?.parse::<pid_t>().ok()) == Some(me);
    let by_stat = if proc_is_ours { children_of(me) } else { Vec::new() };
    let by_task = task_children();
    if by_stat.is_empty() && by_task.is_empty() {
        Ok(())
    } else {
        Err(format!("children left behind (pid, state): {by_stat:?}; /proc/self/task/*/children: {by_task:?}"))
    }
}

pub fn my_pid() -> pid_t {
    std::process::id() as pid_t
}

/// Open fds of this process.
pub fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count().saturating_sub(1)).unwrap_or(0)
}

/// Makes this process a child subreaper: orphans of its descendants come here.
pub fn become_subreaper() -> Res<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(format!("prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error()))
    }
}

/// Raw `waitpid`, retried on EINTR: `Ok(None)` when (WNOHANG) nothing ended.
pub fn waitpid(pid: pid_t, nohang: bool) -> Result<Option<(pid_t, c_int)>, i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, if nohang { libc::WNOHANG } else { 0 }) };
        match r {
            0 => return Ok(None),
            -1 if errno() == libc::EINTR => continue,
            -1 => return Err(errno()),
            p => return Ok(Some((p, status))),
        }
    }
}

/// For a subreaper after the processes it started are gone: reaps orphans
/// until no child is left, killing what still runs after `limit`. Returns
/// (reaped, killed).
pub fn reap_orphans(limit: Duration) -> (usize, usize) {
    let deadline = Instant::now() + limit;
    let (mut reaped, mut killed) = (0, 0);
    loop {
        match waitpid(-1, true) {
            Ok(Some(_)) => reaped += 1,
            Err(_) => return (reaped, killed),
            Ok(None) if Instant::now() > deadline => {
                for (pid, state) in children_of(my_pid()) {
                    if state != 'Z' {
                        // SAFETY: kill with a pid of our own child.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        killed += 1;
                    }
                }
                while let Ok(Some(_)) = waitpid(-1, false) {
                    reaped += 1;
                }
                return (reaped, killed);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Reads one line from `fd` within `limit` (None on timeout or EOF).
pub fn read_line(fd: RawFd, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as c_int + 1) } <= 0 {
            continue;
        }
        let mut byte = 0u8;
        // SAFETY: reads one byte into a valid buffer.
        match unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) } {
            1 if byte == b'\n' => return Some(String::from_utf8_lossy(&line).into_owned()),
            1 => line.push(byte),
            -1 if errno() == libc::EINTR => {}
            _ => return None,
        }
    }
}

static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Exits the process with a message when [`progress`] has not been called for
/// `limit`: "nothing hangs", checked from inside.
pub fn watchdog(what: &'static str, limit: Duration) {
    std::thread::spawn(move || {
        block_all_signals();
        let mut seen = PROGRESS.load(SeqCst);
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = PROGRESS.load(SeqCst);
            if now != seen {
                seen = now;
                since = Instant::now();
            } else if since.elapsed() > limit {
                eprintln!("VIOLATION {what}: no progress for {limit:?} (a call hangs)");
                std::process::exit(3);
            }
        }
    });
}

/// Tells the [`watchdog`] that the scenario moved on.
pub fn progress() {
    PROGRESS.fetch_add(1, SeqCst);
}

/// Blocks every signal in the calling thread (helper threads must not take
/// the scenario's signals).
pub fn block_all_signals() {
    // SAFETY: a valid full sigset; pthread_sigmask only changes this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Sets a soft resource limit (the hard one stays).
pub fn set_soft_limit(resource: libc::__rlimit_resource_t, soft: u64) -> Res<()> {
    // SAFETY: rl is a valid rlimit struct for get and set.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(resource, &mut rl);
        rl.rlim_cur = soft.min(rl.rlim_max);
        if libc::setrlimit(resource, &rl) == 0 {
            Ok(())
        } else {
            Err(format!("setrlimit({resource}, {soft}): {}", std::io::Error::last_os_error()))
        }
    }
}

/// The hard limit of a resource.
pub fn hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    // SAFETY: rl is a valid out-pointer.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(resource, &mut rl);
        rl.rlim_max
    }
}

/// Collects violations: the first few are kept word for word.
#[derive(Default)]
pub struct Violations {
    pub count: usize,
    pub first: Vec<String>,
}

impl Violations {
    pub fn add(&mut self, what: String) {
        self.count += 1;
        if self.first.len() < 20 {
            self.first.push(what);
        }
    }

    /// Ok(summary) without violations; otherwise every kept one, then the summary.
    pub fn finish(self, summary: String) -> Res<String> {
        if self.count == 0 {
            return Ok(summary);
        }
        let mut text = self.first.join("\n");
        if self.count > self.first.len() {
            text.push_str(&format!("\n... and {} more", self.count - self.first.len()));
        }
        Err(format!("{text}\n{summary} -- {} violation(s)", self.count))
    }
}
