//! The Rust API on real processes. Reapers and signal dispositions are
//! process-wide, so each test re-executes this binary and runs its scenario in
//! a process of its own.

use zreap_testsupport as support;

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;
use zreap::{ForkResult, InstallFlags, SpawnOptions};

const SCENARIO: &str = "ZREAP_TEST_SCENARIO";

/// Runs `body` in a fresh copy of this test binary; fails if it fails there.
fn isolated(name: &str, body: fn()) {
    if std::env::var(SCENARIO).as_deref() == Ok(name) {
        body();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = support::run_with_deadline(
        Command::new(exe).args(["--exact", name, "--nocapture", "--test-threads=1"]).env(SCENARIO, name),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{name} failed in its own process:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "{name} did not run in its own process:\n{stdout}");
}

/// A tracked `sh` that lives until the returned socket (the second value)
/// is dropped, then exits 1.
fn tracked_reader() -> (i32, impl Sized) {
    let (read_end, write_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let child = zreap::Command::new("/bin/sh").args(["-c", "exec >/dev/null 2>&1; read line"]).stdin(read_end).spawn();
    (child.unwrap().pid(), write_end)
}

fn spawn_sh(script: &str) -> i32 {
    zreap::Command::new("/bin/sh").args(["-c", script]).spawn().unwrap().pid()
}

fn my_pid() -> i32 {
    std::process::id() as i32
}

#[test]
fn own_scope_leaves_foreign_children_alone() {
    isolated("own_scope_leaves_foreign_children_alone", || {
        zreap::install(InstallFlags::OWN).unwrap();
        for code in 0..20 {
            let tracked = spawn_sh(&format!("exit {code}"));
            let foreign = Command::new("/bin/sh").args(["-c", &format!("exit {}", code + 1)]).status().unwrap();
            assert_eq!(foreign.code(), Some(code + 1), "std::process lost its child's status");
            let exit = zreap::wait(tracked).unwrap();
            assert_eq!((exit.pid, exit.status.code()), (tracked, Some(code)));
        }
        assert_eq!(zreap::wait_any().unwrap_err().raw_os_error(), Some(libc::ECHILD));
        assert!(support::zombies_of(my_pid()).is_empty());
    });
}

#[test]
fn all_scope_reaps_plain_forks_and_reports_each_once() {
    isolated("all_scope_reaps_plain_forks_and_reports_each_once", || {
        zreap::install(InstallFlags::empty()).unwrap();
        let mut pids = Vec::new();
        for code in 0..30 {
            // SAFETY: the child only calls _exit.
            match unsafe { libc::fork() } {
                0 => unsafe { libc::_exit(code) },
                child => pids.push((child, Some(code))),
            }
        }
        let mut seen = Vec::new();
        for _ in 0..1000 {
            zreap::reap_all(|e| seen.push((e.pid, e.status.code()))).unwrap();
            if seen.len() == pids.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen.sort();
        pids.sort();
        assert_eq!(seen, pids);
        assert_eq!(zreap::reap_all(|_| ()).unwrap(), 0);
        assert!(support::zombies_of(my_pid()).is_empty());
        assert_eq!(zreap::stats().reported, 30);
    });
}

#[test]
fn fork_is_tracked_and_no_handler_fd_wakes_a_poll_loop() {
    isolated("fork_is_tracked_and_no_handler_fd_wakes_a_poll_loop", || {
        zreap::install(InstallFlags::OWN | InstallFlags::NO_HANDLER).unwrap();
        // SAFETY: the child only calls _exit.
        let child = match unsafe { zreap::fork(&SpawnOptions::default()) }.unwrap() {
            ForkResult::Child => unsafe { libc::_exit(9) },
            ForkResult::Parent(child) => child,
        };
        let fd = zreap::reap_fd().unwrap().as_raw_fd();
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 10_000) }, 1, "reap fd never became readable");
        let mut exits = Vec::new();
        zreap::reap_all(|e| exits.push(e)).unwrap();
        assert_eq!(exits.len(), 1);
        assert_eq!((exits[0].pid, exits[0].status.code()), (child, Some(9)));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0, "reap fd still readable after reap_all");
        assert_eq!(zreap::stats().tracked, 0);
    });
}

/// Minor page faults of the calling thread so far.
fn thread_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid; getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid rusage to fill.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) }, 0);
    ru.ru_minflt
}

/// The calling thread's page faults over `forks` plain `fork()` + `_exit` +
/// `waitpid`, run `depth` KiB further down the stack (where the fork's frames
/// fall decides whether they straddle a page, alike with and without zreap).
fn fork_faults(depth: usize, forks: usize) -> i64 {
    if depth > 0 {
        let pad = std::hint::black_box([0u8; 1024]);
        let faults = fork_faults(depth - 1, forks);
        std::hint::black_box(&pad);
        return faults;
    }
    let before = thread_faults();
    for _ in 0..forks {
        // SAFETY: the child only calls _exit.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            pid => {
                assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
                let mut status = -1;
                // SAFETY: status is a valid out-pointer.
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            }
        }
    }
    thread_faults() - before
}

#[test]
fn host_fork_copies_no_page_of_zreap_in_the_parent() {
    isolated("host_fork_copies_no_page_of_zreap_in_the_parent", || {
        const FORKS: usize = 40;
        // glibc's fork takes its multi-threaded path once a pthread has run
        // (zreap's keeper is one when run by root): take it on both sides.
        std::thread::spawn(|| ()).join().unwrap();
        let per_depth = || -> Vec<i64> {
            (0..8)
                .map(|depth| {
                    fork_faults(depth, 5);
                    fork_faults(depth, FORKS)
                })
                .collect()
        };
        let bare = per_depth();
        // No handler, so that no signal frame lands on the stack.
        zreap::install(InstallFlags::OWN | InstallFlags::NO_HANDLER).unwrap();
        let (live, write_end) = tracked_reader();
        let tracked = per_depth();
        // After a fork, every page the parent writes first is copied: zreap's
        // fork handlers write only the gate's page, which a fork does not
        // share with the child (MADV_WIPEONFORK).
        let extra = bare.iter().zip(&tracked).map(|(b, t)| t - b).min().unwrap();
        println!("page faults in {FORKS} forks, per stack depth: {bare:?} alone, {tracked:?} beside a tracked child");
        assert!(
            extra < FORKS as i64 / 2,
            "{extra} more page faults in the parent in {FORKS} forks beside a tracked child"
        );
        drop(write_end);
        assert_eq!(zreap::wait(live).unwrap().status.code(), Some(1));
        assert!(support::zombies_of(my_pid()).is_empty());
    });
}

/// `/proc/PID/NAME` as a C string in `buf`, made without allocating.
fn proc_path<'a>(pid: i32, name: &str, buf: &'a mut [u8; 64]) -> &'a std::ffi::CStr {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "/proc/{pid}/{name}\0").unwrap();
    let len = cursor.position() as usize;
    std::ffi::CStr::from_bytes_with_nul(&buf[..len]).unwrap()
}

/// How many pages of `pid`'s private writable mappings are present and
/// mapped by it alone. In a fork child blocked right after the fork, these
/// are the pages that it or its parent wrote since (a write copies a page the
/// two shared, leaving each copy exclusive). Allocates nothing (`maps` has
/// room), so that the count does not copy pages of the heap.
fn exclusive_pages(pid: i32, maps: &mut Vec<u8>) -> usize {
    let mut path = [0u8; 64];
    let fd = |path: &std::ffi::CStr| {
        // SAFETY: open with a valid path.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "open {path:?}: {}", std::io::Error::last_os_error());
        fd
    };
    let maps_fd = fd(proc_path(pid, "maps", &mut path));
    maps.clear();
    loop {
        let spare = maps.capacity() - maps.len();
        assert!(spare > 0, "no room left for /proc/{pid}/maps");
        // SAFETY: reads into the vector's spare capacity.
        let n = unsafe { libc::read(maps_fd, maps.as_mut_ptr().add(maps.len()).cast(), spare) };
        assert!(n >= 0);
        if n == 0 {
            break;
        }
        // SAFETY: read initialised n more bytes.
        unsafe { maps.set_len(maps.len() + n as usize) };
    }
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(maps_fd) };
    let pagemap = fd(proc_path(pid, "pagemap", &mut path));
    let hex = |s: &[u8]| s.iter().fold(0usize, |v, &c| v * 16 + (c as char).to_digit(16).unwrap() as usize);
    let mut count = 0;
    for line in maps.split(|&c| c == b'\n').filter(|l| l.len() > 40) {
        let dash = line.iter().position(|&c| c == b'-').unwrap();
        let space = line.iter().position(|&c| c == b' ').unwrap();
        if &line[space + 1..space + 5] != b"rw-p" {
            continue;
        }
        let (start, end) = (hex(&line[..dash]) / 4096, hex(&line[dash + 1..space]) / 4096);
        let mut entries = [0u64; 512];
        let mut page = start;
        while page < end {
            let n = (end - page).min(entries.len());
            // SAFETY: reads n entries of 8 bytes into the array.
            let got = unsafe { libc::pread(pagemap, entries.as_mut_ptr().cast(), n * 8, (page * 8) as libc::off_t) };
            assert_eq!(got, (n * 8) as isize, "pagemap of {pid}");
            const PRESENT: u64 = 1 << 63;
            const EXCLUSIVE: u64 = 1 << 56;
            count += entries[..n].iter().filter(|&&e| e & (PRESENT | EXCLUSIVE) == PRESENT | EXCLUSIVE).count();
            page += n;
        }
    }
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(pagemap) };
    count
}

/// The pages copied by a plain `fork()` whose child blocks at once (see
/// [`exclusive_pages`]), run `depth` KiB further down the stack.
fn fork_copies(depth: usize, maps: &mut Vec<u8>) -> usize {
    if depth > 0 {
        let pad = std::hint::black_box([0u8; 1024]);
        let copies = fork_copies(depth - 1, maps);
        std::hint::black_box(&pad);
        return copies;
    }
    let (mut release, mut ready) = ([0; 2], [0; 2]);
    // SAFETY: two arrays of two fds to fill.
    assert!(unsafe {
        libc::pipe2(release.as_mut_ptr(), libc::O_CLOEXEC) == 0 && libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) == 0
    });
    let mut byte = 0u8;
    // SAFETY: the child makes system calls only, then exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: raw reads and writes of one byte on the pipes made above;
        // the child ends when this process does (the release pipe's EOF).
        unsafe {
            libc::close(release[1]);
            libc::write(ready[1], (&byte as *const u8).cast(), 1);
            libc::read(release[0], (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    assert!(pid > 0);
    // SAFETY: one byte into a valid place.
    assert_eq!(unsafe { libc::read(ready[0], (&mut byte as *mut u8).cast(), 1) }, 1);
    let copies = exclusive_pages(pid, maps);
    let mut status = -1;
    // SAFETY: a valid one-byte write, the child's wait, and closes of the pipes.
    unsafe {
        libc::write(release[1], (&byte as *const u8).cast(), 1);
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        [release, ready].iter().flatten().for_each(|&fd| {
            libc::close(fd);
        });
    }
    copies
}

#[test]
fn host_fork_copies_no_page_of_zreap_in_the_child() {
    isolated("host_fork_copies_no_page_of_zreap_in_the_child", || {
        // As root the keeper is a pthread, whose stack and arena glibc's fork
        // writes in the child: be a user, whose keeper glibc never sees.
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            // SAFETY: no groups, then integer ids.
            unsafe {
                assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
                assert_eq!(libc::setresgid(65534, 65534, 65534), 0);
                assert_eq!(libc::setresuid(65534, 65534, 65534), 0);
                // A change of ids makes the process undumpable, and its
                // children's pagemaps unreadable to it.
                assert_eq!(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
            }
        }
        let mut maps = Vec::with_capacity(1 << 20);
        let per_depth = |maps: &mut Vec<u8>| -> Vec<usize> {
            (0..8).map(|depth| (0..3).map(|_| fork_copies(depth, maps)).min().unwrap()).collect()
        };
        let bare = per_depth(&mut maps);
        zreap::install(InstallFlags::OWN).unwrap();
        let (live, write_end) = tracked_reader();
        // The handler would run on this thread's stack as each fork child
        // exits, and the parent's next use of those stack pages would copy
        // them: SIGCHLD waits until the forks are done.
        // SAFETY: a valid signal set; this thread's mask only (zreap's keeper
        // blocks every signal).
        let sigchld = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        let tracked = per_depth(&mut maps);
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &sigchld, std::ptr::null_mut()) };
        // zreap's fork handlers write only the gate's page in the parent,
        // which a fork does not share (MADV_WIPEONFORK), and nothing in the
        // child, which adopts zreap's state only if it calls the library.
        let extra = bare.iter().zip(&tracked).map(|(&b, &t)| t as i64 - b as i64).min().unwrap();
        println!("pages copied per fork, per stack depth: {bare:?} alone, {tracked:?} beside a tracked child");
        assert!(
            extra <= 0,
            "a fork beside a tracked child copies {extra} more pages (per depth: {bare:?} against {tracked:?})"
        );
        drop(write_end);
        assert_eq!(zreap::wait(live).unwrap().status.code(), Some(1));
        assert!(support::zombies_of(my_pid()).is_empty());
    });
}

#[test]
fn spawn_keeps_its_child_stack_for_the_next_spawn() {
    isolated("spawn_keeps_its_child_stack_for_the_next_spawn", || {
        zreap::install(InstallFlags::OWN).unwrap();
        let spawn_and_wait = |code: i32| {
            let pid = spawn_sh(&format!("exit {code}"));
            assert_eq!(zreap::wait(pid).unwrap().status.code(), Some(code));
        };
        for code in 0..5 {
            spawn_and_wait(code);
        }
        // A fresh stack per spawn costs this thread a page fault each time
        // (glibc's clone writes on it before the child runs).
        let before = thread_faults();
        for code in 0..50 {
            spawn_and_wait(code);
        }
        let faults = thread_faults() - before;
        assert!(faults < 25, "{faults} page faults in 50 spawns and waits");
        assert!(support::zombies_of(my_pid()).is_empty());
    });
}
