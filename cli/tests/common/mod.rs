//! Shared by the CLI tests: the zreap binary, C helper compilation, running
//! with a deadline, /proc walking and cleanup.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The built `zreap` binary.
pub fn zreap() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zreap"))
}

/// The directory of the zreap binary (`target/debug`): where the shim is looked for.
pub fn bin_dir() -> PathBuf {
    zreap().parent().unwrap().to_path_buf()
}

/// The preload shim next to the binary, if the workspace built it.
pub fn shim() -> Option<PathBuf> {
    let p = bin_dir().join("libzreap_preload.so");
    p.is_file().then_some(p)
}

/// Fails the test when the shim is missing: the README's test command builds
/// the workspace first (`cargo test` alone does not build a cdylib).
pub fn require_shim(test: &str) {
    assert!(
        shim().is_some(),
        "{test}: libzreap_preload.so is not in {}: build the workspace first (cargo build --workspace)",
        bin_dir().display()
    );
}

/// Compiles `cli/helpers/NAME.c` into `target/<profile>/cli-helpers/NAME`,
/// unless the executable is newer than the source and `common.h`.
pub fn build_helper(name: &str) -> PathBuf {
    let helpers = Path::new(env!("CARGO_MANIFEST_DIR")).join("helpers");
    let src = helpers.join(format!("{name}.c"));
    let out_dir = bin_dir().join("cli-helpers");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(name);
    let newest = [src.clone(), helpers.join("common.h")]
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
        .unwrap();
    if std::fs::metadata(&out).and_then(|m| m.modified()).is_ok_and(|t| t >= newest) {
        return out;
    }
    // One name per build: tests running in parallel may build the same helper.
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("tmp{}.{n}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(cc)
        .args(["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg(&src)
        .arg("-o")
        .arg(&tmp)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {} failed", src.display());
    std::fs::rename(&tmp, &out).unwrap();
    out
}

#[allow(unused_imports)]
pub use zreap_testsupport::{
    become_subreaper, descendants, first_line, kill_tree, reap_pids, run_with_deadline, state_ppid,
};

/// A running helper program. Dropping it kills it and its whole tree and
/// reaps everything, also when the test panics.
pub struct Helper {
    pub child: Child,
    pub line: Option<String>,
}

impl Helper {
    /// Starts the compiled helper `name` and reads its first line.
    pub fn start(name: &str) -> Helper {
        become_subreaper();
        let exe = build_helper(name);
        let mut child = Command::new(&exe)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let line = first_line(child.stdout.take().unwrap(), Duration::from_secs(30));
        Helper { child, line }
    }

    /// The pid in the `ready PID` line.
    pub fn ready_pid(&self) -> i32 {
        self.line
            .as_deref()
            .and_then(|l| l.trim().strip_prefix("ready "))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("expected `ready PID`, got {:?}", self.line))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
    }
}
