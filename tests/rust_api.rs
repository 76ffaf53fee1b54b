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
fn host_fork_copies_one_page_of_zreap_in_the_parent() {
    isolated("host_fork_copies_one_page_of_zreap_in_the_parent", || {
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
        let (read_end, write_end) = std::io::pipe().unwrap();
        let live = zreap::Command::new("/bin/sh")
            .args(["-c", "exec >/dev/null 2>&1; read line"])
            .stdin(read_end)
            .spawn()
            .unwrap()
            .pid();
        let tracked = per_depth();
        // After a fork, every page the parent writes first is copied: zreap's
        // fork handlers write only its page of hot words (the gate).
        let extra = bare.iter().zip(&tracked).map(|(b, t)| t - b).min().unwrap();
        println!("page faults in {FORKS} forks, per stack depth: {bare:?} alone, {tracked:?} beside a tracked child");
        assert!(
            extra < FORKS as i64 * 3 / 2,
            "{extra} more page faults in {FORKS} forks beside a tracked child (per depth: {bare:?} against {tracked:?})"
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
