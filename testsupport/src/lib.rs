//! Test helpers shared by zreap's crates: builds C programs against
//! `include/zreap.h` and the freshly built `libzreap.so`, runs them with a
//! deadline, and counts zombies in /proc.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("testsupport sits in the repository").to_path_buf()
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
    build_c_variant(src, "", &[])
}

/// The compiler flags of [`build_c_sanitized`]. Instrumented programs run
/// slower: their deadline (`CTEST_DEADLINE`, 120 s by default) is 170 s, just
/// under [`run_c_test_sanitized`]'s limit.
pub const SANITIZE_FLAGS: [&str; 3] =
    ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-DCTEST_DEADLINE=170"];

/// Compiles `src` like [`build_c`], instrumented with AddressSanitizer and
/// UBSan (`c-bin/NAME-asan`). `libzreap.so` itself is not instrumented.
pub fn build_c_sanitized(src: &str) -> PathBuf {
    build_c_variant(src, "-asan", &SANITIZE_FLAGS)
}

/// Compiles `src` into `c-bin/NAME{suffix}` with `flags` added.
fn build_c_variant(src: &str, suffix: &str, flags: &[&str]) -> PathBuf {
    let repo = repo();
    let lib_dir = profile_dir();
    let source = repo.join(src);
    let stem = source.file_stem().unwrap().to_string_lossy().to_string();
    let out_dir = lib_dir.join("c-bin");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{stem}{suffix}"));

    let inputs = [source, repo.join("include/zreap.h"), lib_dir.join("libzreap.so")];
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

    // A name of its own per build: two tests may build the same program at once.
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let build = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("tmp{}-{build}", std::process::id()));
    compile_c(src, &tmp, &lib_dir, &lib_dir.display().to_string(), flags);
    fs::rename(&tmp, &out).unwrap();
    out
}

/// Compiles `src` (relative to the repository) into `out`, linked against
/// the `libzreap.so` in `lib_dir` with `rpath` (a directory, or `$ORIGIN`),
/// with the C tests' flags and `flags` added. Panics if it fails.
pub fn compile_c(src: &str, out: &Path, lib_dir: &Path, rpath: &str, flags: &[&str]) {
    let repo = repo();
    let status = Command::new(c_compiler())
        .args(["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread"])
        .args(flags)
        .arg("-I")
        .arg(repo.join("include"))
        .arg("-I")
        .arg(repo.join("c-tests"))
        .arg(repo.join(src))
        .arg("-o")
        .arg(out)
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{rpath}"))
        .arg("-lzreap")
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {src} failed");
}

/// Runs `cmd` to completion, killing it after `limit`. Panics on timeout.
/// Its output is read while it runs: a program that writes more than a pipe
/// holds (64 KiB) would otherwise block in write for good.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout.join().unwrap()),
                String::from_utf8_lossy(&stderr.join().unwrap())
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

/// Reaps the given pids within a deadline. They come to this process (a
/// subreaper) when their parent dies, which for a multi-threaded parent may
/// happen after the helper was reaped: a pid that is not (yet) our child is
/// retried while it exists. At the deadline, children of ours still running
/// are SIGKILLed and reaped.
pub fn reap_pids(pids: &[i32]) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() {
        left.retain(|&pid| {
            let mut st = 0;
            // SAFETY: waitpid on one pid with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            match r {
                0 => true,                      // our child, still running
                r if r > 0 => false,            // reaped
                _ => state_ppid(pid).is_some(), // not ours (yet): keep while it exists
            }
        });
        if Instant::now() > deadline {
            for &pid in &left {
                if state_ppid(pid).map(|(_, p)| p) == Some(me) {
                    // SAFETY: kill and a blocking wait on our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                }
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills `child` and every process below it, and reaps them (those that come
/// to this process, a subreaper, when their parent dies included).
pub fn kill_tree(child: &mut std::process::Child) {
    let tree = descendants(child.id() as i32);
    for &pid in tree.iter().rev() {
        // SAFETY: kill with a pid just seen in the child's tree.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
    reap_pids(&tree);
}

/// (state, ppid) of a process, or None when it is gone.
pub fn state_ppid(pid: i32) -> Option<(char, i32)> {
    proc_state_ppid(pid)
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
    run_c_test_under(&[], src);
}

/// [`run_c_test`] in a new user and pid namespace, where the program may steer
/// pids through `/proc/sys/kernel/ns_last_pid` (`c-tests/ctest_pid.h`); needs
/// no real root. `--kill-child` ends the namespace if the deadline kills it.
pub fn run_c_test_in_pid_namespace(src: &str) {
    run_c_test_under(&["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc"], src);
}

/// Runs a C test program with `wrapper` (a command and its options) in front.
pub fn run_c_test_under(wrapper: &[&str], src: &str) {
    let exe = build_c(src);
    let mut cmd = match wrapper.split_first() {
        Some((program, options)) => {
            let mut cmd = Command::new(program);
            cmd.args(options).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    run_c_test_command(&mut cmd, src);
}

/// [`run_c_test`] as uid and gid 65534 (the caller is root), with no
/// supplementary groups and no capabilities: a process that cannot change
/// its credentials. Runs in `/tmp`, which that user may write.
pub fn run_c_test_unprivileged(src: &str) {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(build_c(src));
    cmd.uid(65534).gid(65534).current_dir("/tmp");
    run_c_test_command(&mut cmd, src);
}

fn run_c_test_command(cmd: &mut Command, src: &str) {
    let out = run_with_deadline(cmd, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "{src}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
pub fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
        assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());
    });
}

/// Reads the first line of `out` within `limit`, then keeps draining the pipe
/// in the background (so the program never gets SIGPIPE or blocks on a full
/// pipe). Returns `None` on timeout or EOF.
pub fn first_line(out: ChildStdout, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let ok = matches!(reader.read_line(&mut line), Ok(n) if n > 0);
        let _ = tx.send(if ok { Some(line) } else { None });
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(limit).ok().flatten()
}

pub mod echo;

/// A fresh, empty directory for the logs of one checked run of `exe`.
fn fresh_log_dir(exe: &Path, tool: &str) -> PathBuf {
    let dir = exe.with_file_name(format!("{}.{tool}-logs", exe.file_name().unwrap().to_string_lossy()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The contents of the files in `dir` that hold one of `markers`.
fn reports_in(dir: &Path, markers: &[&str]) -> Vec<String> {
    let mut reports: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.ok()?.path()).ok())
        .filter(|text| markers.iter().any(|m| text.contains(m)))
        .collect();
    reports.sort();
    reports
}

/// Fails unless `out` is a success and no report was logged.
fn assert_clean(what: &str, out: &Output, reports: &[String]) {
    assert!(
        out.status.success() && reports.is_empty(),
        "{what}: {:?}, {} report(s)\n{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        reports.len(),
        reports.join("\n"),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `src` with AddressSanitizer + UBSan and runs it; fails on its exit
/// status, and on any report from it or from a process it forked (the reports
/// go to per-process log files, so a daemon's count too). Leak checking is on,
/// with the suppressions of `capi/tests/sanitizers/lsan.supp`.
pub fn run_c_test_sanitized(src: &str) {
    let exe = build_c_sanitized(src);
    let logs = fresh_log_dir(&exe, "asan");
    let supp = repo().join("capi/tests/sanitizers/lsan.supp");
    let out = run_with_deadline(
        Command::new(&exe)
            .env(
                "ASAN_OPTIONS",
                format!("detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0:log_path={}/asan", logs.display()),
            )
            .env("LSAN_OPTIONS", format!("suppressions={}:print_suppressions=0", supp.display()))
            .env("UBSAN_OPTIONS", format!("halt_on_error=1:print_stacktrace=1:log_path={}/ubsan", logs.display())),
        Duration::from_secs(180),
    );
    // Warnings ("False leaks are possible") are logged too; reports say ERROR or SUMMARY.
    let mut reports = reports_in(&logs, &["ERROR:", "runtime error", "SUMMARY:"]);
    // gcc's UBSan ignores log_path when linked with ASan: its reports go to
    // stderr (and are lost for a daemon, whose stderr is /dev/null).
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("runtime error:") {
        reports.push(stderr.into_owned());
    }
    assert_clean(src, &out, &reports);
}

/// Runs `src` (built as by [`build_c`]) under valgrind memcheck; fails on its
/// exit status and on any error memcheck finds in it or in a process it forked
/// (definite leaks included; suppressions in `capi/tests/sanitizers/valgrind.supp`).
pub fn run_c_test_valgrind(src: &str) {
    let exe = build_c(src);
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "valgrind not found: run scripts/setup.sh");
    let logs = fresh_log_dir(&exe, "valgrind");
    let supp = repo().join("capi/tests/sanitizers/valgrind.supp");
    let out = run_with_deadline(
        Command::new("valgrind")
            .args(["--error-exitcode=99", "--leak-check=full", "--show-leak-kinds=definite"])
            .args(["--errors-for-leak-kinds=definite", "--trace-children=no"])
            .arg(format!("--suppressions={}", supp.display()))
            .arg(format!("--log-file={}/vg.%p", logs.display()))
            .arg(&exe),
        Duration::from_secs(240),
    );
    let reports: Vec<String> = reports_in(&logs, &["ERROR SUMMARY: "])
        .into_iter()
        .filter(|text| !text.contains("ERROR SUMMARY: 0 errors"))
        .collect();
    assert_clean(src, &out, &reports);
}
