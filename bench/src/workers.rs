//! The measurements themselves. Each runs in a fresh process (the bench
//! binary re-executed with a hidden `__worker` subcommand), because zreap's
//! state is process-wide: `install`, the fork handlers it registers, the
//! spawner and watcher threads. A worker prints `key=value` lines on stdout
//! and exits 0, or prints why it failed on stderr and exits non-zero.

use libc::{c_char, c_int, pid_t};
use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

extern "C" {
    static environ: *const *mut c_char;
}

const TRUE: &CStr = c"/bin/true";

type Res<T> = Result<T, String>;

fn errno_str(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Entry point of `zreap-bench __worker KIND ARGS...`.
pub fn run(args: &[String]) -> i32 {
    let arg = |i: usize| -> usize { args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0) };
    let result = match args.first().map(String::as_str) {
        Some("latency") => latency(args.get(1).map_or("", String::as_str), arg(2), arg(3), arg(4)),
        Some("storm") => storm(args.get(1).map_or("", String::as_str), arg(2), arg(3)),
        Some("own-scale") => own_scale(arg(1), arg(2)),
        Some("scan") => scan(arg(1), arg(2)),
        Some("memory") => memory(arg(1)),
        Some("install-rss") => install_rss(args.get(1).map_or("", String::as_str)),
        Some("live") => crate::live::run(&args[1..]),
        _ => Err(format!("unknown worker {args:?}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("worker {args:?}: {e}");
            2
        }
    }
}

// ---------------------------------------------------------------- helpers

/// Maps `mib` MiB of anonymous memory in 4 KiB pages and writes every page,
/// so the process is as large as a real program of that size. Never unmapped.
fn touch_memory(mib: usize) -> Res<()> {
    if mib == 0 {
        return Ok(());
    }
    let len = mib << 20;
    // SAFETY: a fresh anonymous private mapping; only this function writes it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(errno_str("mmap"));
        }
        // Ordinary 4 KiB pages (the machine's THP mode is "madvise" anyway),
        // populated in one call, then every page written once more.
        libc::madvise(p, len, libc::MADV_NOHUGEPAGE);
        libc::madvise(p, len, libc::MADV_POPULATE_WRITE);
        let p = p.cast::<u8>();
        for off in (0..len).step_by(4096) {
            std::ptr::write_volatile(p.add(off), 1);
        }
    }
    Ok(())
}

fn waitpid_blocking(pid: pid_t) -> Res<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        if got == pid {
            return Ok(status);
        }
        if got == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(errno_str(&format!("waitpid({pid})")));
    }
}

fn check_exit(status: c_int, what: &str) -> Res<()> {
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("{what}: child ended with status {status:#x}"))
    }
}

fn print_samples(samples: &[u64]) {
    let s: Vec<String> = samples.iter().map(u64::to_string).collect();
    println!("samples={}", s.join(","));
}

/// Raises the soft fd limit to the hard one (10,000 pidfds are needed).
pub(crate) fn raise_nofile() {
    // SAFETY: rl is a valid rlimit struct.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

fn pipe() -> Res<(c_int, c_int)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two fds.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } == -1 {
        return Err(errno_str("pipe"));
    }
    Ok((fds[0], fds[1]))
}

fn close(fd: c_int) {
    // SAFETY: the caller owns fd.
    unsafe { libc::close(fd) };
}

/// In a forked child: drop the write end, block in read() until every write
/// end is closed, then _exit(0). Async-signal-safe.
fn child_block_then_exit(rfd: c_int, wfd: c_int) -> ! {
    // SAFETY: plain system calls in a fork child.
    unsafe {
        libc::close(wfd);
        let mut b = 0u8;
        while libc::read(rfd, (&mut b as *mut u8).cast(), 1) == -1 && *libc::__errno_location() == libc::EINTR {}
        libc::_exit(0)
    }
}

/// A child made by `zreap::fork` that blocks on `rfd` until released.
fn zfork_blocked(rfd: c_int, wfd: c_int) -> Res<pid_t> {
    // SAFETY: the child only makes async-signal-safe system calls.
    match unsafe { zreap::fork(&zreap::SpawnOptions::default()) } {
        Ok(zreap::ForkResult::Child) => child_block_then_exit(rfd, wfd),
        Ok(zreap::ForkResult::Parent(child)) => Ok(child),
        Err(e) => Err(format!("zreap::fork: {e}")),
    }
}

/// A plain fork() child that blocks on `rfd` until released.
fn fork_blocked(rfd: c_int, wfd: c_int) -> Res<pid_t> {
    // SAFETY: the child only makes async-signal-safe system calls.
    match unsafe { libc::fork() } {
        -1 => Err(errno_str("fork")),
        0 => child_block_then_exit(rfd, wfd),
        pid => Ok(pid),
    }
}

/// Children of this process in state Z, found by scanning /proc.
pub fn count_zombie_children() -> usize {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
            let Some(close) = stat.rfind(')') else { return false };
            let mut rest = stat[close + 1..].split_whitespace();
            let state = rest.next();
            let ppid = rest.next().and_then(|p| p.parse::<pid_t>().ok());
            state == Some("Z") && ppid == Some(me)
        })
        .count()
}

/// Resident set size in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Reaps whatever is left (ends the children's zombie state after a failed run).
fn sweep() {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

// ---------------------------------------------------------------- 1, 2: latency

/// vfork + execve, kept in a function of its own that the compiler may not
/// inline: between vfork and execve the child runs on this frame, with the
/// parent suspended, and does nothing but execve and _exit with arguments
/// computed before the vfork (libc deprecates vfork because a compiler that
/// does not know it returns twice may reuse stack slots across it).
///
/// # Safety
/// `path`, `argv` and `envp` must be valid for execve.
#[inline(never)]
#[allow(deprecated)]
unsafe fn vfork_execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> pid_t {
    // SAFETY: see above.
    unsafe {
        let pid = libc::vfork();
        if pid == 0 {
            libc::execve(path, argv, envp);
            libc::_exit(127);
        }
        pid
    }
}

/// One start of /bin/true (or, for the fork methods, a child that _exits at
/// once) and the wait for it, by `method`.
fn start_and_wait(method: &str) -> Res<()> {
    let argv: [*const c_char; 2] = [TRUE.as_ptr(), std::ptr::null()];
    let status = match method {
        "zspawn" => {
            let pid = zreap::spawn(TRUE, &[TRUE], None, &zreap::SpawnOptions::default())
                .map_err(|e| format!("zreap::spawn: {e}"))?;
            zreap::wait(pid).map_err(|e| format!("zreap::wait: {e}"))?.wstatus()
        }
        "zspawn-pdeathsig" => {
            let opts = zreap::SpawnOptions { pdeathsig: Some(zreap::Signal::TERM), ..Default::default() };
            let pid = zreap::spawn(TRUE, &[TRUE], None, &opts).map_err(|e| format!("zreap::spawn: {e}"))?;
            zreap::wait(pid).map_err(|e| format!("zreap::wait: {e}"))?.wstatus()
        }
        "posix_spawn" => {
            let mut pid = 0;
            // SAFETY: argv is a null-terminated array of C strings; environ is the process's.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    TRUE.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr().cast(),
                    environ.cast(),
                )
            };
            if rc != 0 {
                return Err(format!("posix_spawn: {}", std::io::Error::from_raw_os_error(rc)));
            }
            waitpid_blocking(pid)?
        }
        "fork+execve" => {
            // SAFETY: the child only calls execve and _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above; argv and environ are valid.
                unsafe {
                    libc::execve(TRUE.as_ptr(), argv.as_ptr(), environ.cast());
                    libc::_exit(127);
                }
            }
            if pid == -1 {
                return Err(errno_str("fork"));
            }
            waitpid_blocking(pid)?
        }
        "vfork+execve" => {
            // SAFETY: argv is null-terminated; environ is the process's.
            let pid = unsafe { vfork_execve(TRUE.as_ptr(), argv.as_ptr(), environ.cast()) };
            if pid == -1 {
                return Err(errno_str("vfork"));
            }
            waitpid_blocking(pid)?
        }
        "Command" => {
            let st = std::process::Command::new("/bin/true").status().map_err(|e| format!("Command: {e}"))?;
            return if st.success() { Ok(()) } else { Err(format!("Command: {st}")) };
        }
        "zfork" => {
            // SAFETY: the child only calls _exit.
            match unsafe { zreap::fork(&zreap::SpawnOptions::default()) } {
                // SAFETY: _exit in the child.
                Ok(zreap::ForkResult::Child) => unsafe { libc::_exit(0) },
                Ok(zreap::ForkResult::Parent(child)) => {
                    zreap::wait(child).map_err(|e| format!("zreap::wait: {e}"))?.wstatus()
                }
                Err(e) => return Err(format!("zreap::fork: {e}")),
            }
        }
        "fork" => {
            // SAFETY: the child only calls _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above.
                unsafe { libc::_exit(0) };
            }
            if pid == -1 {
                return Err(errno_str("fork"));
            }
            waitpid_blocking(pid)?
        }
        other => return Err(format!("unknown method {other}")),
    };
    check_exit(status, method)
}

fn latency_loop(method: &str, warmup: usize, iters: usize) -> Res<Vec<u64>> {
    for _ in 0..warmup {
        start_and_wait(method)?;
    }
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        start_and_wait(method)?;
        samples.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(samples)
}

/// `latency METHOD MIB ITERS WARMUP`: touches MIB MiB, then times ITERS
/// start+wait rounds. `zspawn-pdeathsig` runs on a second thread, so the
/// library hands the clone to its long-lived spawner thread.
fn latency(method: &str, mib: usize, iters: usize, warmup: usize) -> Res<i32> {
    touch_memory(mib)?;
    let samples = if method == "zspawn-pdeathsig" {
        let method = method.to_string();
        std::thread::spawn(move || latency_loop(&method, warmup, iters)).join().map_err(|_| "thread panicked")??
    } else {
        latency_loop(method, warmup, iters)?
    };
    print_samples(&samples);
    Ok(0)
}

// ---------------------------------------------------------------- 3: reap storm

/// `storm VARIANT N SETTLE_MS`: N children block on one pipe; closing its
/// write end releases them together; the time until every exit has been
/// reaped and reported is measured.
fn storm(variant: &str, n: usize, settle_ms: usize) -> Res<i32> {
    raise_nofile();
    let (flags, zfork) = match variant {
        "raw" => (None, false),
        "all-handler" => (Some(zreap::InstallFlags::empty()), false),
        "all-handler-zfork" => (Some(zreap::InstallFlags::empty()), true),
        "own" => (Some(zreap::InstallFlags::OWN), true),
        "no-handler" => (Some(zreap::InstallFlags::NO_HANDLER), false),
        other => return Err(format!("unknown storm variant {other}")),
    };
    let reap_fd = match flags {
        Some(f) => {
            zreap::install(f).map_err(|e| format!("zreap::install: {e}"))?;
            Some(zreap::reap_fd().map_err(|e| format!("zreap::reap_fd: {e}"))?.as_raw_fd())
        }
        None => None,
    };
    let (rfd, wfd) = pipe()?;
    let mut made = 0;
    let mut fork_error = String::new();
    for _ in 0..n {
        let r = if zfork { zfork_blocked(rfd, wfd) } else { fork_blocked(rfd, wfd) };
        match r {
            Ok(_) => made += 1,
            Err(e) => {
                fork_error = e;
                break;
            }
        }
    }
    // Let every child reach its read().
    std::thread::sleep(Duration::from_millis(settle_ms as u64));

    let deadline = Duration::from_secs(60);
    let mut reported = 0usize;
    let mut bad = 0usize;
    let t0 = Instant::now();
    close(wfd);
    match reap_fd {
        None => {
            while reported < made && t0.elapsed() < deadline {
                let mut status = 0;
                // SAFETY: status is a valid out-pointer.
                let got = unsafe { libc::waitpid(-1, &mut status, 0) };
                if got > 0 {
                    reported += 1;
                    bad += usize::from(!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0));
                } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
        }
        Some(fd) => loop {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 100) };
            zreap::reap_all(|e| {
                reported += 1;
                bad += usize::from(!(e.status.success()));
            })
            .map_err(|e| format!("zreap::reap_all: {e}"))?;
            if reported + zreap::stats().dropped as usize >= made || t0.elapsed() >= deadline {
                break;
            }
        },
    }
    let elapsed = t0.elapsed();
    close(rfd);
    let stats = zreap::stats();
    let zombies = count_zombie_children();
    println!(
        "ns={} n={made} reported={reported} dropped={} reaped_by_lib={} bad_status={bad} zombies={zombies}",
        elapsed.as_nanos(),
        stats.dropped,
        stats.reaped
    );
    if !fork_error.is_empty() {
        println!("fork_error={fork_error}");
    }
    sweep();
    Ok(0)
}

// ---------------------------------------------------------------- 4: OWN scaling

/// `own-scale N REPS`: with N live tracked children (zreap::fork, blocked),
/// one more tracked child is released; the time from its release until
/// zreap::wait(pid) returns its exit.
fn own_scale(n: usize, reps: usize) -> Res<i32> {
    raise_nofile();
    zreap::install(zreap::InstallFlags::OWN).map_err(|e| format!("zreap::install: {e}"))?;
    let (rfd, wfd) = pipe()?;
    // Warm up the library's paths with one child, collected before measuring RSS.
    {
        let (r2, w2) = pipe()?;
        let pid = zfork_blocked(r2, w2)?;
        close(r2);
        close(w2);
        zreap::wait(pid).map_err(|e| format!("zreap::wait: {e}"))?;
    }
    let rss_before = rss_bytes();
    let made = Instant::now();
    for _ in 0..n {
        zfork_blocked(rfd, wfd)?;
    }
    let make_ns = made.elapsed().as_nanos();
    let rss_after = rss_bytes();
    println!("rss_before={rss_before} rss_after={rss_after} n={n} make_ns={make_ns}");
    let warmup = 5;
    let mut samples = Vec::with_capacity(reps);
    for rep in 0..reps + warmup {
        let (r2, w2) = pipe()?;
        let pid = zfork_blocked(r2, w2)?;
        close(r2);
        // From the release of the child to the delivery of its exit.
        let t0 = Instant::now();
        close(w2);
        let exit = zreap::wait(pid).map_err(|e| format!("zreap::wait: {e}"))?;
        let ns = t0.elapsed().as_nanos() as u64;
        if exit.pid != pid {
            return Err(format!("zreap::wait({pid}) returned {}", exit.pid));
        }
        if rep >= warmup {
            samples.push(ns);
        }
    }
    print_samples(&samples);
    // Release the N children and collect them.
    close(wfd);
    let mut left = n;
    let t0 = Instant::now();
    while left > 0 && t0.elapsed() < Duration::from_secs(30) {
        left -= zreap::reap_all(|_| {}).unwrap_or(0).min(left);
        std::thread::sleep(Duration::from_millis(5));
    }
    close(rfd);
    println!("zombies={}", count_zombie_children());
    Ok(0)
}

/// `scan N REPS`: the O(n) contrast: N plain children blocked, one more
/// exits, then waitpid(pid, WNOHANG) over every child finds it.
fn scan(n: usize, reps: usize) -> Res<i32> {
    let (rfd, wfd) = pipe()?;
    let mut pids = Vec::with_capacity(n + 1);
    let made = Instant::now();
    for _ in 0..n {
        pids.push(fork_blocked(rfd, wfd)?);
    }
    println!("make_ns={}", made.elapsed().as_nanos());
    let warmup = 5;
    let mut samples = Vec::with_capacity(reps);
    for rep in 0..reps + warmup {
        let (r2, w2) = pipe()?;
        let pid = fork_blocked(r2, w2)?;
        close(r2);
        close(w2);
        // SAFETY: info is a valid out-pointer.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) } == -1 {
            return Err(errno_str("waitid"));
        }
        pids.push(pid);
        let t0 = Instant::now();
        let mut found = 0;
        for &p in &pids {
            let mut status = 0;
            // SAFETY: status is a valid out-pointer.
            if unsafe { libc::waitpid(p, &mut status, libc::WNOHANG) } == p {
                found += 1;
            }
        }
        let ns = t0.elapsed().as_nanos() as u64;
        pids.pop();
        if found != 1 {
            return Err(format!("scan found {found} exits, expected 1"));
        }
        if rep >= warmup {
            samples.push(ns);
        }
    }
    print_samples(&samples);
    close(wfd);
    for &p in &pids {
        waitpid_blocking(p)?;
    }
    close(rfd);
    println!("zombies={}", count_zombie_children());
    Ok(0)
}

// ---------------------------------------------------------------- 6: memory

/// `memory N`: RSS added per tracked child (N live zreap::fork children).
fn memory(n: usize) -> Res<i32> {
    raise_nofile();
    zreap::install(zreap::InstallFlags::OWN).map_err(|e| format!("zreap::install: {e}"))?;
    let (rfd, wfd) = pipe()?;
    // Warm up the library's paths with one child, collected before measuring.
    {
        let (r2, w2) = pipe()?;
        let pid = zfork_blocked(r2, w2)?;
        close(r2);
        close(w2);
        zreap::wait(pid).map_err(|e| format!("zreap::wait: {e}"))?;
    }
    let before = rss_bytes();
    for _ in 0..n {
        zfork_blocked(rfd, wfd)?;
    }
    let after = rss_bytes();
    let tracked = zreap::stats().tracked;
    println!("rss_before={before} rss_after={after} n={n} tracked={tracked}");
    close(wfd);
    let mut left = n;
    let t0 = Instant::now();
    while left > 0 && t0.elapsed() < Duration::from_secs(30) {
        left -= zreap::reap_all(|_| {}).unwrap_or(0).min(left);
        std::thread::sleep(Duration::from_millis(5));
    }
    close(rfd);
    println!("zombies={}", count_zombie_children());
    Ok(0)
}

/// `install-rss FLAGS`: RSS before and after zreap::install in a fresh process.
fn install_rss(flags: &str) -> Res<i32> {
    let flags = match flags {
        "empty" => zreap::InstallFlags::empty(),
        "own" => zreap::InstallFlags::OWN,
        "no-handler" => zreap::InstallFlags::NO_HANDLER,
        other => return Err(format!("unknown flags {other}")),
    };
    let _ = rss_bytes();
    let before = rss_bytes();
    zreap::install(flags).map_err(|e| format!("zreap::install: {e}"))?;
    // Let a watcher thread (NO_HANDLER) start and settle.
    std::thread::sleep(Duration::from_millis(20));
    let after = rss_bytes();
    println!("rss_before={before} rss_after={after}");
    Ok(0)
}
