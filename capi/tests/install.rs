//! `make install` and `make deb`, run against the artifacts `cargo build
//! --workspace` already made (`PROFILE` and `CARGO_TARGET_DIR` point the
//! Makefile at them: no second build). Installs into a temporary prefix,
//! builds `examples/echo_server.c` with nothing but `pkg-config`, shared and
//! static, runs both, runs the installed `zreap`, then `make uninstall`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use zreap_testsupport::{self as support, echo::Server};

const LIMIT: Duration = Duration::from_secs(120);

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("zreap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The cargo profile directory holding the built `zreap`, the shim and the
/// libraries (`profile_dir` may be its `deps/`).
fn build_dir() -> PathBuf {
    let dir = support::profile_dir();
    let dir = if dir.ends_with("deps") { dir.parent().unwrap().to_path_buf() } else { dir };
    for artifact in ["libzreap.so", "libzreap.a", "libzreap_preload.so", "libzreap_preload_core.so", "zreap"] {
        assert!(
            dir.join(artifact).is_file(),
            "{artifact} missing in {}: run `cargo build --workspace` first",
            dir.display()
        );
    }
    dir
}

/// Runs `make TARGET` in the repository on the already-built profile.
fn make(target: &str, vars: &[(&str, &Path)]) -> Output {
    let build = build_dir();
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(support::repo()).arg(target);
    cmd.arg(format!("PROFILE={}", build.file_name().unwrap().to_string_lossy()));
    cmd.arg(format!("CARGO_TARGET_DIR={}", build.parent().unwrap().display()));
    for (name, value) in vars {
        cmd.arg(format!("{name}={}", value.display()));
    }
    let out = support::run_with_deadline(&mut cmd, LIMIT);
    assert!(out.status.success(), "make {target} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = support::run_with_deadline(cmd, LIMIT);
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `pkg-config ARGS zreap` against the temporary prefix, split into words.
fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let text = stdout_of(
        Command::new("pkg-config").env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")).args(args).arg("zreap"),
    );
    text.split_whitespace().map(String::from).collect()
}

fn compile(source: &Path, exe: &Path, flags: &[String]) {
    let out = support::run_with_deadline(
        Command::new(support::c_compiler()).arg(source).arg("-o").arg(exe).args(flags),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "compiling {} {flags:?} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the echo server, has one line echoed, and stops it.
fn echo_once(exe: &Path, lib: &Path) {
    let server = Server::start_with_env(exe, &[("LD_LIBRARY_PATH", &lib.display().to_string())], &["LD_PRELOAD"]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"hello zreap\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    assert_eq!(line, "hello zreap\n");
}

/// Every file and symlink under `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn make_install_pkg_config_and_uninstall() {
    let tmp = TempDir::new("install");
    let prefix = tmp.0.join("prefix");
    make("install", &[("PREFIX", &prefix)]);
    let lib = prefix.join("lib");

    let installed = files(&prefix);
    for expected in [
        "bin/zreap",
        "include/zreap.h",
        "lib/libzreap.a",
        "lib/libzreap.so",
        "lib/libzreap.so.0",
        "lib/libzreap.so.0.1.0",
        "lib/pkgconfig/zreap.pc",
        "lib/zreap/libzreap_preload.so",
        "lib/zreap/libzreap_preload_core.so",
        "share/man/man1/zreap.1",
        "share/man/man3/zreap_install.3",
        "share/man/man3/zreap_uninstall.3",
        "share/man/man7/zreap.7",
    ] {
        assert!(installed.iter().any(|f| f == expected), "{expected} not installed: {installed:?}");
    }
    assert_eq!(std::fs::read_link(lib.join("libzreap.so")).unwrap(), Path::new("libzreap.so.0"));
    assert_eq!(std::fs::read_link(lib.join("libzreap.so.0")).unwrap(), Path::new("libzreap.so.0.1.0"));
    let dynamic = stdout_of(Command::new("readelf").arg("-d").arg(lib.join("libzreap.so.0.1.0")));
    assert!(dynamic.contains("Library soname: [libzreap.so.0]"), "{dynamic}");

    // Shared: nothing but pkg-config's flags; the program needs the soname.
    let source = support::repo().join("examples/echo_server.c");
    let shared = tmp.0.join("echo_server_shared");
    compile(&source, &shared, &pkg_config(&prefix, &["--cflags", "--libs"]));
    let needed = stdout_of(Command::new("readelf").arg("-d").arg(&shared));
    assert!(needed.contains("Shared library: [libzreap.so.0]"), "{needed}");
    echo_once(&shared, &lib);

    // Static: `pkg-config --static` with -lzreap taken as libzreap.a.
    let flags: Vec<String> = pkg_config(&prefix, &["--cflags", "--libs", "--static"])
        .into_iter()
        .map(|f| if f == "-lzreap" { "-l:libzreap.a".to_string() } else { f })
        .collect();
    let fixed = tmp.0.join("echo_server_static");
    compile(&source, &fixed, &flags);
    let needed = stdout_of(Command::new("readelf").arg("-d").arg(&fixed));
    assert!(!needed.contains("libzreap"), "linked statically, yet: {needed}");
    echo_once(&fixed, &tmp.0);

    // The installed zreap finds the installed shim in ../lib/zreap.
    let preload = stdout_of(Command::new(prefix.join("bin/zreap")).args(["run", "--", "sh", "-c", "echo $LD_PRELOAD"]));
    assert_eq!(Path::new(&preload), lib.join("zreap/libzreap_preload.so"));
    // ... which loads the installed core beside it (at start-up with this setting).
    let maps = stdout_of(
        Command::new(prefix.join("bin/zreap"))
            .args(["run", "--", "cat", "/proc/self/maps"])
            .env("ZREAP_PDEATHSIG", "TERM"),
    );
    let core = lib.join("zreap/libzreap_preload_core.so");
    assert!(maps.contains(&*core.to_string_lossy()), "{} not mapped:\n{maps}", core.display());

    make("uninstall", &[("PREFIX", &prefix)]);
    assert_eq!(files(&prefix), Vec::<String>::new(), "make uninstall left files behind");
}

#[test]
fn make_install_honours_destdir_and_the_directory_variables() {
    let tmp = TempDir::new("destdir");
    let stage = tmp.0.join("stage");
    let vars: [(&str, &Path); 3] =
        [("DESTDIR", &stage), ("PREFIX", Path::new("/opt/zr")), ("LIBDIR", Path::new("/opt/zr/lib64"))];
    make("install", &vars);
    let installed = files(&stage);
    assert!(installed.iter().any(|f| f == "opt/zr/lib64/libzreap.so.0.1.0"), "{installed:?}");
    assert!(installed.iter().any(|f| f == "opt/zr/lib64/pkgconfig/zreap.pc"), "{installed:?}");
    let pc = std::fs::read_to_string(stage.join("opt/zr/lib64/pkgconfig/zreap.pc")).unwrap();
    assert!(pc.contains("libdir=/opt/zr/lib64\n") && pc.contains("prefix=/opt/zr\n"), "{pc}");
    assert!(pc.contains("Libs.private: -l"), "{pc}");
    make("uninstall", &vars);
    assert_eq!(files(&stage), Vec::<String>::new(), "make uninstall left files behind");
}

#[test]
fn make_deb_holds_what_make_install_installs() {
    let tmp = TempDir::new("deb");
    make("deb", &[("DEB_OUT", &tmp.0), ("DEB_COMPRESSION", Path::new("none"))]);
    let deb = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("zreap_") && p.extension().is_some_and(|x| x == "deb")
        })
        .expect("make deb writes zreap_*.deb");
    let listing = stdout_of(Command::new("dpkg").arg("-c").arg(&deb));
    for expected in [
        "./usr/bin/zreap",
        "./usr/include/zreap.h",
        "./usr/lib/libzreap.a",
        "./usr/lib/libzreap.so.0.1.0",
        "./usr/lib/libzreap.so -> libzreap.so.0",
        "./usr/lib/libzreap.so.0 -> libzreap.so.0.1.0",
        "./usr/lib/pkgconfig/zreap.pc",
        "./usr/lib/zreap/libzreap_preload.so",
        "./usr/lib/zreap/libzreap_preload_core.so",
        "./usr/share/man/man1/zreap.1",
        "./usr/share/man/man3/zspawn.3",
        "./usr/share/man/man7/zreap.7",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(expected)), "{expected} not in the package:\n{listing}");
    }
    let control = stdout_of(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Package"));
    assert_eq!(control, "zreap");
}
