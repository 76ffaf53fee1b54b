//! Page faults of a host's own `fork()` + `_exit` + `waitpid` while zreap
//! tracks a child: `c-tests/count_fork_faults.c`, run against the optimized
//! `libzreap.so` (built here with `cargo build --release -p zreap-capi`),
//! since only an optimized build lays the code out as shipped.
//!
//! - The parent takes no fault more than with a SIGCHLD handler of its own:
//!   the handler's run at the child's exit writes no page the fork shared.
//! - The child takes one more: the one page of the library's fork-child
//!   section (`.zreap_fork_child`), which it maps again to run the hooks.
//!
//! Run as uid 65534 when root: a process that can change its credentials
//! gets the keeper as a pthread, and glibc then takes its multi-threaded
//! fork path (its locks, and the pages they lie on), whoever made the thread.
//! Each run compares the least of 40 forks before and after; the smallest
//! difference of five runs is checked: a process's layout (ASLR) decides
//! where page boundaries fall, and about one run in ten puts the handler's
//! deeper stack, or the signal frame, across one more page of it.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;
use zreap_testsupport as support;

/// A directory removed when the test ends, whether it passes or not.
struct RemovedAtEnd(std::path::PathBuf);

impl Drop for RemovedAtEnd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `(before, after)` for `what` ("parent" or "child") in the program's output.
fn counts(stdout: &str, what: &str) -> (u64, u64) {
    let line = stdout.lines().find_map(|l| l.strip_prefix(what)).unwrap_or_else(|| panic!("no {what} line: {stdout}"));
    let mut numbers = line.split_whitespace().map(|n| n.parse::<u64>().expect("a count"));
    (numbers.next().expect("before"), numbers.next().expect("after"))
}

#[test]
fn a_host_fork_beside_a_tracked_child_costs_the_parent_no_fault_and_the_child_one_page() {
    let repo = support::repo();
    // The target directory holds cargo's tmp/ for integration tests. Named to
    // the nested cargo: the outer one may have been given --target-dir, which
    // is not passed down (CARGO_TARGET_DIR is), and a library left in that
    // directory's release/ by an earlier run must not be measured instead.
    // The library is measured as it ships: flags given to the outer build
    // (coverage counters, sanitizers) write pages of their own at each fork.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "-p", "zreap-capi", "--target-dir"])
        .arg(target)
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .current_dir(&repo)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --release -p zreap-capi failed");
    let release = target.join("release");
    assert!(release.join("libzreap.so").exists(), "no {}/libzreap.so", release.display());
    // The program and the release library in a directory of their own, which
    // uid 65534 can reach (a checkout under a 0700 home cannot be), linked
    // with rpath $ORIGIN and run without LD_LIBRARY_PATH: support::build_c
    // links against the test's own profile (target/debug) with an rpath to
    // it, and where the linker writes DT_RPATH (GNU ld without
    // --enable-new-dtags) that beats LD_LIBRARY_PATH, so the unoptimized
    // library would be measured.
    let dir = std::env::temp_dir().join(format!("zreap-fork-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("a directory for the program");
    let _cleanup = RemovedAtEnd(dir.clone());
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::copy(release.join("libzreap.so"), dir.join("libzreap.so.0")).expect("copy the library");
    std::fs::copy(release.join("libzreap.so"), dir.join("libzreap.so")).expect("copy the library");
    let exe = dir.join("count_fork_faults");
    support::compile_c("c-tests/count_fork_faults.c", &exe, &dir, "$ORIGIN", &[]);
    let mut least = [i64::MAX; 2];
    let mut seen = Vec::new();
    for _ in 0..5 {
        let mut cmd = Command::new(&exe);
        cmd.env_remove("LD_LIBRARY_PATH").env_remove("LD_PRELOAD").current_dir("/tmp");
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            cmd.uid(65534).gid(65534);
        }
        let out = support::run_with_deadline(&mut cmd, Duration::from_secs(60));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "count_fork_faults: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for (k, what) in ["parent", "child"].into_iter().enumerate() {
            let (before, after) = counts(&stdout, what);
            least[k] = least[k].min(after as i64 - before as i64);
            seen.push(format!("{what} {before} -> {after}"));
        }
    }
    let [parent, child] = least;
    assert!(
        parent <= 0,
        "the parent took {parent} more fault(s) per fork with zreap's handler than with its own: {seen:?}"
    );
    assert!(
        child <= 1,
        "the child took {child} more faults per fork: more than the fork-child section's page: {seen:?}"
    );
}
