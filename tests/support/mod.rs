//! Shared by the integration tests and the demo example: builds C programs
//! against `include/zreap.h` and the freshly built `libzreap.so`, runs them with
//! a deadline, and counts zombies in /proc.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo profile directory holding `libzreap.so` (`target/debug` or
/// `target/release`), found from the running test or example binary.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    while !dir.join("libzreap.so").exists() {
        dir = dir.parent().unwrap_or_else(|| panic!("libzreap.so not found above {}", exe.display())).to_path_buf();
    }
    dir
}

/// The C compiler: `$CC`, else `cc`.
pub fn c_compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

/// Compiles `src` (relative to the repository) into an executable linked
/// against `libzreap.so`, and returns its path. The build is skipped when the
/// executable is newer than the source, the header, the library and the
/// `c-tests/*.h` harness.
pub fn build_c(src: &str) -> PathBuf {
    let repo = repo();
    let lib_dir = profile_dir();
    let source = repo.join(src);
    let stem = source.file_stem().unwrap().to_string_lossy().to_string();
    let out_dir = lib_dir.join("c-bin");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(&stem);

    let inputs = [source.clone(), repo.join("include/zreap.h"), lib_dir.join("libzreap.so")];
    let headers = fs::read_dir(repo.join("c-tests"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "h"));
    let newest_input = inputs
        .into_iter()
        .chain(headers)
        .filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
        .unwrap();
    if let Ok(built) = fs::metadata(&out).and_then(|m| m.modified()) {
        if built >= newest_input {
            return out;
        }
    }

    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = Command::new(c_compiler())
        .args(["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .arg("-I")
        .arg(repo.join("include"))
        .arg("-I")
        .arg(repo.join("c-tests"))
        .arg(&source)
        .arg("-o")
        .arg(&tmp)
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lzreap")
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {src} failed");
    fs::rename(&tmp, &out).unwrap();
    out
}

/// Runs `cmd` to completion, killing it after `limit`. Panics on timeout.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One process's fields from `/proc/PID/stat`: (state, ppid). The command
/// name may hold spaces and parentheses, so parsing starts after the last ')'.
pub fn proc_state_ppid(pid: i32) -> Option<(char, i32)> {
    let mut text = String::new();
    fs::File::open(format!("/proc/{pid}/stat")).ok()?.read_to_string(&mut text).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Pids of the zombies (state `Z`) whose parent is `ppid`.
pub fn zombies_of(ppid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| matches!(proc_state_ppid(pid), Some(('Z', p)) if p == ppid))
        .collect()
}

/// Pids of every process (any state) whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| matches!(proc_state_ppid(pid), Some((_, p)) if p == ppid))
        .collect()
}

/// Every process below `pid`, children before their own children.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut all = children_of(pid);
    let mut i = 0;
    while i < all.len() {
        let more = children_of(all[i]);
        all.extend(more);
        i += 1;
    }
    all
}

/// Builds and runs one C test program from `c-tests/`; fails with its output
/// unless it exits 0 within three minutes.
pub fn run_c_test(src: &str) {
    let exe = build_c(src);
    let out = run_with_deadline(&mut Command::new(&exe), Duration::from_secs(180));
    assert!(
        out.status.success(),
        "{src}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
pub mod echo;
