//! The public header: the checked-in `include/zreap.h` is what cbindgen makes
//! of `capi/src/lib.rs`, and it compiles with every installed C and C++
//! compiler at `-std=c99 -Wall -Wextra -pedantic -Werror` (`header_c99.c`) and
//! as C++ (`header_cpp.cpp`), linked against `libzreap.so` and run.
//!
//! No build writes the header: after changing the C API, regenerate it with
//! `ZREAP_BLESS=1 cargo test -p zreap-capi --test header` and commit it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zreap_testsupport as support;

fn generate() -> Vec<u8> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read capi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut header = Vec::new();
    bindings.write(&mut header);
    header
}

#[test]
fn header_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/zreap.h");
    let generated = generate();
    if std::env::var_os("ZREAP_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/zreap.h");
        return;
    }
    let checked_in = std::fs::read(&path).expect("read include/zreap.h");
    assert!(
        generated == checked_in,
        "include/zreap.h is stale: run `ZREAP_BLESS=1 cargo test -p zreap-capi --test header` and commit it"
    );
}

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
