//! "No allocation in the SIGCHLD handler or in a forked child", checked rather
//! than stated: this test binary's global allocator aborts the process when
//! it is entered, while armed,
//! - from a signal handler for SIGCHLD on the guarded thread (the kernel
//!   blocks SIGCHLD in a thread while its handler runs, and nothing else in
//!   these scenarios blocks it there), or
//! - in a process other than the one that armed it (a child of `fork`, before
//!   it execs or exits).
//!
//! Each scenario runs in a fresh copy of this binary (dispositions and the
//! reaper are process-wide), single-threaded but for zreap's own threads,
//! which block every signal, so every SIGCHLD runs zreap's handler on the
//! guarded main thread. `guard_catches_an_allocating_handler` proves the
//! guard can fail.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};
use std::time::Duration;
use zreap::{ForkResult, InstallFlags, SpawnOptions};
use zreap_testsupport as support;

struct Guard;

static ARMED: AtomicBool = AtomicBool::new(false);
static ARMED_PID: AtomicI32 = AtomicI32::new(0);

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Whether SIGCHLD is blocked in this thread (raw system call: no allocation).
fn sigchld_blocked() -> bool {
    let mut mask: u64 = 0;
    // SAFETY: a NULL new set only reads the mask into a valid 8-byte buffer.
    unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK, std::ptr::null::<u64>(), &mut mask as *mut u64, 8usize)
    };
    mask & (1 << (libc::SIGCHLD - 1)) != 0
}

fn check() {
    if !ARMED.load(Relaxed) {
        return;
    }
    // SAFETY: getpid cannot fail.
    let in_child = unsafe { libc::getpid() } != ARMED_PID.load(Relaxed);
    let in_handler = GUARDED.try_with(Cell::get).unwrap_or(false) && sigchld_blocked();
    if in_child || in_handler {
        let what: &[u8] = if in_child {
            b"alloc_guard: allocation in a forked child\n"
        } else {
            b"alloc_guard: allocation in the SIGCHLD handler\n"
        };
        // SAFETY: write and abort are async-signal-safe.
        unsafe {
            libc::write(2, what.as_ptr().cast(), what.len());
            libc::abort();
        }
    }
}

// SAFETY: forwards to the system allocator after a check that never allocates.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        check();
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check();
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

fn arm() {
    GUARDED.with(|g| g.set(true));
    // SAFETY: getpid cannot fail.
    ARMED_PID.store(unsafe { libc::getpid() }, Relaxed);
    ARMED.store(true, Relaxed);
}

fn disarm() {
    ARMED.store(false, Relaxed);
}

/// Children that exit at once, made by zfork, plain fork and zspawn, in
/// bursts, so the handler runs for many exits at a time (and the fork
/// handlers and zfork's child path run armed).
fn storm(flags: InstallFlags) {
    zreap::install(flags).unwrap();
    let true_path = c"/bin/true";
    let mut made = 0;
    arm();
    for round in 0..20 {
        for _ in 0..10 {
            // SAFETY: the child only calls _exit.
            match unsafe { zreap::fork(&SpawnOptions::default()) }.unwrap() {
                ForkResult::Child => unsafe { libc::_exit(round) },
                ForkResult::Parent(_) => made += 1,
            }
            if !flags.contains(InstallFlags::OWN) {
                // SAFETY: the child only calls _exit.
                if unsafe { libc::fork() } == 0 {
                    unsafe { libc::_exit(1) };
                }
                made += 1;
            }
        }
        zreap::spawn(true_path, &[true_path], None, &SpawnOptions::default()).unwrap();
        made += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reported = 0;
    let mut killed = 0;
    for _ in 0..2000 {
        reported += zreap::reap_all(|exit| killed += usize::from(exit.status.code().is_none())).unwrap();
        if reported == made {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    disarm();
    assert_eq!(reported, made);
    assert_eq!(killed, 0, "children died of a signal (the guard aborts a forked child that allocates)");
    assert!(support::zombies_of(std::process::id() as i32).is_empty());
}

fn storm_all_children() {
    storm(InstallFlags::empty());
}

fn storm_own_children() {
    storm(InstallFlags::OWN);
}

extern "C" fn allocating_handler(_: libc::c_int) {
    std::hint::black_box(Box::new(1u64));
}

/// The guard itself: a handler that allocates must abort the process.
fn allocating_handler_scenario() {
    // SAFETY: installs an extern "C" handler for SIGCHLD.
    unsafe { libc::signal(libc::SIGCHLD, allocating_handler as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    arm();
    // SAFETY: the child only calls _exit.
    if unsafe { libc::fork() } == 0 {
        unsafe { libc::_exit(0) };
    }
    std::thread::sleep(Duration::from_secs(5));
}

const SCENARIO: &str = "ZREAP_ALLOC_GUARD_SCENARIO";

fn run(name: &str) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    support::run_with_deadline(Command::new(exe).env(SCENARIO, name), Duration::from_secs(120))
}

fn main() {
    let scenarios: [(&str, fn()); 3] = [
        ("storm_all_children", storm_all_children),
        ("storm_own_children", storm_own_children),
        ("allocating_handler", allocating_handler_scenario),
    ];
    if let Ok(name) = std::env::var(SCENARIO) {
        let (_, body) = scenarios.iter().find(|(n, _)| *n == name).expect("known scenario");
        body();
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = 0;
    let mut passed = 0;
    for (name, _) in &scenarios {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let out = run(name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = if *name == "allocating_handler" {
            // The guard must have fired: SIGABRT with its message.
            out.status.code().is_none() && stderr.contains("allocation in the SIGCHLD handler")
        } else {
            out.status.success()
        };
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed += 1;
            println!("{name}: {:?}\n{stderr}", out.status);
        }
    }
    println!("\ntest result: {}. {passed} passed; {failed} failed", if failed == 0 { "ok" } else { "FAILED" });
    if failed > 0 {
        std::process::exit(101);
    }
}
