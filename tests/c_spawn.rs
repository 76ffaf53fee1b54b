//! C-level tests of spawning (zspawn, zfork), parent-death signals and the
//! public header. Each `c-tests/spawn_*.c` / `c-tests/pdeath_*.c` program is
//! built against `include/zreap.h` and `libzreap.so` and run as its own
//! process; the header tests compile `c-tests/header_c99.c` and
//! `c-tests/header_cpp.cpp` with strict flags under every installed compiler.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

// ------------------------------------------------------------------ zspawn

#[test]
fn spawn_validate() {
    support::run_c_test("c-tests/spawn_validate.c");
}

#[test]
fn spawn_exec_errors() {
    support::run_c_test("c-tests/spawn_exec_errors.c");
}

#[test]
fn spawn_basic() {
    support::run_c_test("c-tests/spawn_basic.c");
}

#[test]
fn spawn_env() {
    support::run_c_test("c-tests/spawn_env.c");
}

#[test]
fn spawn_cwd() {
    support::run_c_test("c-tests/spawn_cwd.c");
}

#[test]
fn spawn_fds() {
    support::run_c_test("c-tests/spawn_fds.c");
}

#[test]
fn spawn_session() {
    support::run_c_test("c-tests/spawn_session.c");
}

#[test]
fn spawn_sigstate() {
    support::run_c_test("c-tests/spawn_sigstate.c");
}

#[test]
fn spawn_thread() {
    support::run_c_test("c-tests/spawn_thread.c");
}

// ------------------------------------------------------------------- zfork

#[test]
fn spawn_zfork() {
    support::run_c_test("c-tests/spawn_zfork.c");
}

// ------------------------------------------------------ parent-death signals

#[test]
fn pdeath_spawn_exit() {
    support::run_c_test("c-tests/pdeath_spawn_exit.c");
}

#[test]
fn pdeath_spawn_thread() {
    support::run_c_test("c-tests/pdeath_spawn_thread.c");
}

#[test]
fn pdeath_spawn_killed() {
    support::run_c_test("c-tests/pdeath_spawn_killed.c");
}

#[test]
fn pdeath_spawn_race() {
    support::run_c_test("c-tests/pdeath_spawn_race.c");
}

#[test]
fn pdeath_zfork_race() {
    support::run_c_test("c-tests/pdeath_zfork_race.c");
}

#[test]
fn pdeath_zfork_thread() {
    support::run_c_test("c-tests/pdeath_zfork_thread.c");
}

// ------------------------------------------------------------------ header

/// True if `compiler` can be started; prints a note and returns false if it
/// is not installed (any other problem is a failure).
fn installed(compiler: &str) -> bool {
    match Command::new(compiler).arg("--version").output() {
        Ok(out) => {
            assert!(out.status.success(), "{compiler} --version failed");
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("note: {compiler} is not installed; skipping its header check");
            false
        }
        Err(e) => panic!("cannot run {compiler}: {e}"),
    }
}

/// Compiles (and links against libzreap.so) `src` with `compiler` and
/// `flags`, then runs the program; fails with the compiler's or the
/// program's output.
fn compile_link_run(compiler: &str, src: &str, flags: &[&str], tag: &str) {
    let repo = support::repo();
    let lib_dir = support::profile_dir();
    let out_dir = lib_dir.join("c-bin");
    std::fs::create_dir_all(&out_dir).unwrap();
    let stem = PathBuf::from(src).file_stem().unwrap().to_string_lossy().to_string();
    let name = format!("{stem}-{tag}").replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_");
    let exe = out_dir.join(format!("{name}.{}", std::process::id()));

    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(repo.join("include"))
        .arg(repo.join(src))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lzreap");
    let out = support::run_with_deadline(&mut cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{compiler} {} {src} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        flags.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let run = support::run_with_deadline(&mut Command::new(&exe), Duration::from_secs(30));
    let _ = std::fs::remove_file(&exe);
    assert!(
        run.status.success(),
        "{src} built by {compiler} {}: {:?}\nstdout:\n{}\nstderr:\n{}",
        flags.join(" "),
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    print!("{}", String::from_utf8_lossy(&run.stdout));
}

const C99_FLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"];

#[test]
fn header_c99_gcc() {
    if installed("gcc") {
        compile_link_run("gcc", "c-tests/header_c99.c", C99_FLAGS, "gcc");
    }
}

#[test]
fn header_c99_clang() {
    if installed("clang") {
        compile_link_run("clang", "c-tests/header_c99.c", C99_FLAGS, "clang");
    }
}

const CXX_FLAGS: &[&str] = &["-Wall", "-Wextra", "-pedantic", "-Werror"];
const CXX11_FLAGS: &[&str] = &["-std=c++11", "-Wall", "-Wextra", "-pedantic", "-Werror"];

#[test]
fn header_cpp_gxx() {
    if installed("g++") {
        compile_link_run("g++", "c-tests/header_cpp.cpp", CXX_FLAGS, "gxx");
        compile_link_run("g++", "c-tests/header_cpp.cpp", CXX11_FLAGS, "gxx11");
    }
}

#[test]
fn header_cpp_clangxx() {
    if installed("clang++") {
        compile_link_run("clang++", "c-tests/header_cpp.cpp", CXX_FLAGS, "clangxx");
        compile_link_run("clang++", "c-tests/header_cpp.cpp", CXX11_FLAGS, "clangxx11");
    }
}
