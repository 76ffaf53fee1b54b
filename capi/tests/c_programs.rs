//! Runs every C test program in `c-tests/` as a test of its own: each is
//! built against `include/zreap.h` and `libzreap.so` and run in a process of
//! its own (signal dispositions and reapers are process-wide), with a deadline.
//! The programs are found, not listed, so a new file cannot be forgotten.
//! Left to other drivers: `count_*.c` (tests/syscalls.rs, under strace),
//! `shim_*.c` and `seed_*.c` (preload/tests, under the
//! shim) and `header_*` (tests/header.rs, with strict compiler flags).
//!
//! A program that includes `ctest_pid.h` steers pids and runs in a new user
//! and pid namespace. Each test's name is the program's, and says the promise
//! it holds (see docs/promises.md).
//!
//! Run as root, the suite runs every other program a second time as uid
//! 65534 (`NAME_unprivileged`): a process that cannot change its credentials
//! gets the keeper as a bare thread (`zreap::sys::bare`), root a pthread, and
//! both must keep every promise. Left out: the two programs that test what
//! only root may do (`daemon_errors`, `spawn_env`).

use libtest_mimic::{Arguments, Trial};
use zreap_testsupport as support;

fn main() {
    let dir = support::repo().join("c-tests");
    let mut programs: Vec<String> = std::fs::read_dir(&dir)
        .expect("c-tests/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".c"))
        .filter(|name| !["shim_", "seed_", "header_", "count_"].iter().any(|p| name.starts_with(p)))
        .collect();
    programs.sort();
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut trials = Vec::new();
    for file in programs {
        let name = file.trim_end_matches(".c").to_string();
        let source = format!("c-tests/{file}");
        let in_pid_namespace =
            std::fs::read_to_string(dir.join(&file)).is_ok_and(|text| text.contains("#include \"ctest_pid.h\""));
        if root && !in_pid_namespace && !["daemon_errors", "spawn_env"].contains(&name.as_str()) {
            let source = source.clone();
            trials.push(Trial::test(format!("{name}_unprivileged"), move || {
                support::run_c_test_unprivileged(&source);
                Ok(())
            }));
        }
        trials.push(Trial::test(name, move || {
            if in_pid_namespace {
                support::run_c_test_in_pid_namespace(&source);
            } else {
                support::run_c_test(&source);
            }
            Ok(())
        }));
    }
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
