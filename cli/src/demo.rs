//! `zreap demo`: the classic wait()-once echo server, the same server under
//! the preload shim, and the zreap-linked server, side by side.
//!
//! The C sources (`cli/demo/`: links to the examples and the header, so the
//! crate packages them) are embedded and compiled at run time with `cc` into a
//! temporary directory. One round per server: a client opens 50 connections,
//! gets an echo on each and is killed, so all 50 server children exit at
//! once; after a second the zombies the round added are counted.

use crate::{locate, procfs};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENT_C: &str = include_str!("../demo/echo_client.c");
const HANDWRITTEN_C: &str = include_str!("../demo/echo_server_handwritten.c");
const ZREAP_C: &str = include_str!("../demo/echo_server.c");
const ZREAP_H: &str = include_str!("../demo/zreap.h");

const CONNECTIONS: usize = 50;
const SETTLE: Duration = Duration::from_secs(1);
const LINE_DEADLINE: Duration = Duration::from_secs(20);

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

fn compile(dir: &Path, name: &str, source: &str, link: &[String]) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).map_err(|e| format!("write {}: {e}", src.display()))?;
    let out = dir.join(name);
    let res = Command::new(cc())
        .args(["-std=gnu11", "-O1", "-pthread", "-I"])
        .arg(dir)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(link)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {}: {e} (is a C compiler installed?)", cc()))?;
    if !res.status.success() {
        return Err(format!("compiling {name} failed:\n{}", String::from_utf8_lossy(&res.stderr)));
    }
    Ok(out)
}

/// Link arguments for libzreap: the shared library next to the binary (its
/// soname `libzreap.so.0` linked to it in `tmp`, the rpath), else the static one.
fn zreap_link(tmp: &Path) -> Result<Vec<String>, String> {
    // In a cargo target directory a `cargo build -p zreap-cli` may leave the
    // library only in deps/.
    let deps = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("deps/libzreap.so")));
    if let Some(so) = locate::find("libzreap.so").ok().or(deps.filter(|p| p.is_file())) {
        let soname = tmp.join("libzreap.so.0");
        std::os::unix::fs::symlink(&so, &soname).map_err(|e| format!("link {}: {e}", soname.display()))?;
        let dir = so.parent().unwrap().display().to_string();
        return Ok(vec![format!("-L{dir}"), "-lzreap".into(), format!("-Wl,-rpath,{}", tmp.display())]);
    }
    let a = locate::find("libzreap.a").map_err(|_| "libzreap.so / libzreap.a not found next to zreap".to_string())?;
    Ok([a.display().to_string()]
        .into_iter()
        .chain(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"].map(String::from))
        .collect())
}

/// Zombies whose parent is `ppid`, and live children of it.
fn children(ppid: i32) -> (Vec<i32>, Vec<i32>) {
    let mut zombies = Vec::new();
    let mut live = Vec::new();
    for pid in procfs::numeric_entries(Path::new("/proc")) {
        if let Ok(s) = procfs::stat_at(Path::new(&format!("/proc/{pid}/stat"))) {
            if s.ppid == ppid {
                if s.state == 'Z' {
                    zombies.push(pid)
                } else {
                    live.push(pid)
                }
            }
        }
    }
    (zombies, live)
}

/// The first line of `out` within `limit`; the rest is drained in the background.
fn first_line(out: ChildStdout, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let ok = matches!(reader.read_line(&mut line), Ok(n) if n > 0);
        let _ = tx.send(ok.then_some(line));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(limit).ok().flatten()
}

/// A running server; dropping it kills it and reaps all it left behind
/// (this process is a subreaper, so its orphans come to us).
struct Server {
    child: Child,
    pid: i32,
    port: u16,
}

impl Server {
    fn start(exe: &Path, env: &[(String, String)]) -> Result<Server, String> {
        let mut child = Command::new(exe)
            .arg("0")
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start {}: {e}", exe.display()))?;
        let pid = child.id() as i32;
        let line = first_line(child.stdout.take().unwrap(), LINE_DEADLINE);
        let port = line.as_deref().and_then(|l| l.trim().strip_prefix("listening on ")).and_then(|p| p.parse().ok());
        let mut server = Server { child, pid, port: 0 };
        match port {
            Some(port) if port != 0 => {
                server.port = port;
                Ok(server)
            }
            _ => Err(format!("{}: no `listening on PORT` line (got {line:?})", exe.display())),
        }
    }

    /// One round; returns the zombies it added.
    fn round(&mut self, client_exe: &Path) -> Result<usize, String> {
        let before = children(self.pid).0.len();
        let mut client = Command::new(client_exe)
            .arg(self.port.to_string())
            .arg(CONNECTIONS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start echo_client: {e}"))?;
        let line = first_line(client.stdout.take().unwrap(), LINE_DEADLINE);
        let _ = client.kill();
        let _ = client.wait();
        if line.as_deref() != Some("ready\n") {
            let mut err = String::new();
            if let Some(mut e) = client.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("echo_client did not get {CONNECTIONS} echoes: {line:?} {err}"));
        }
        std::thread::sleep(SETTLE);
        let deadline = Instant::now() + Duration::from_secs(10);
        if !children(self.pid).1.is_empty() {
            while !children(self.pid).1.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if let Ok(Some(st)) = self.child.try_wait() {
            return Err(format!("the server died: {st}"));
        }
        Ok(children(self.pid).0.len().saturating_sub(before))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let (z, l) = children(self.pid);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left: Vec<i32> = z.into_iter().chain(l).collect();
        while !left.is_empty() {
            left.retain(|&pid| {
                let mut st = 0;
                // SAFETY: waitpid on one pid with a valid status pointer.
                unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) == 0 }
            });
            if Instant::now() > deadline {
                for &pid in &left {
                    // SAFETY: kill, then a blocking waitpid of our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn rounds_of(exe: &Path, env: &[(String, String)], client: &Path, rounds: usize) -> Result<Vec<usize>, String> {
    let mut server = Server::start(exe, env)?;
    (0..rounds).map(|_| server.round(client)).collect()
}

pub fn run(rounds: usize) -> i32 {
    match demo(rounds) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zreap demo: {e}");
            1
        }
    }
}

fn demo(rounds: usize) -> Result<i32, String> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(format!("prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error()));
    }
    let dir = std::env::temp_dir().join(format!("zreap-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let tmp = TempDir(dir);
    std::fs::write(tmp.0.join("zreap.h"), ZREAP_H).map_err(|e| format!("write zreap.h: {e}"))?;

    eprintln!("compiling the echo servers and the client with {} in {} ...", cc(), tmp.0.display());
    let client = compile(&tmp.0, "echo_client", CLIENT_C, &[])?;
    let handwritten = compile(&tmp.0, "echo_server_handwritten", HANDWRITTEN_C, &[])?;
    let zreap_srv = compile(&tmp.0, "echo_server", ZREAP_C, &zreap_link(&tmp.0)?)?;
    let shim = locate::shim().ok();
    if shim.is_none() {
        eprintln!("note: {} not found next to zreap: the shim column is skipped", locate::SHIM);
    }

    println!("{rounds} rounds; each: {CONNECTIONS} connections closed at once, then zombies counted\n");
    let shim_env: Vec<(String, String)> = shim
        .as_ref()
        .map(|s| {
            vec![("LD_PRELOAD".to_string(), s.display().to_string()), ("ZREAP_REAP".to_string(), "handler".to_string())]
        })
        .unwrap_or_default();
    let (h, s, z) = std::thread::scope(|sc| {
        let h = sc.spawn(|| rounds_of(&handwritten, &[], &client, rounds));
        let s = shim.as_ref().map(|_| sc.spawn(|| rounds_of(&handwritten, &shim_env, &client, rounds)));
        let z = sc.spawn(|| rounds_of(&zreap_srv, &[], &client, rounds));
        let join = |j: std::thread::ScopedJoinHandle<'_, Result<Vec<usize>, String>>| {
            j.join().unwrap_or_else(|_| Err("a round panicked".to_string()))
        };
        (join(h), s.map(join), join(z))
    });
    let (h, z) = (h.map_err(|e| format!("hand-written server: {e}"))?, z.map_err(|e| format!("zreap server: {e}"))?);
    let s = s.transpose().map_err(|e| format!("server under the shim: {e}"))?;

    let cell = |v: Option<usize>| v.map_or("shim missing".to_string(), |n| n.to_string());
    println!("        zombies left after the round");
    println!("round   wait()-once handler   same + LD_PRELOAD shim   zreap_install(0)");
    for i in 0..rounds {
        println!("{:>5}   {:>19}   {:>22}   {:>16}", i + 1, h[i], cell(s.as_ref().map(|s| s[i])), z[i]);
    }
    let (th, tz): (usize, usize) = (h.iter().sum(), z.iter().sum());
    let ts = s.as_ref().map(|s| s.iter().sum::<usize>());
    println!("total   {th:>19}   {:>22}   {tz:>16}\n", cell(ts));
    let exits = rounds * CONNECTIONS;
    println!("of {exits} exits per server: the wait()-once handler leaked {th}, zreap_install(0) leaked {tz}");
    match ts {
        Some(n) => println!("the same unmodified server under the shim (ZREAP_REAP=handler) leaked {n}"),
        None => println!("the shim was not found: build the workspace (cargo build --workspace) to see it"),
    }
    Ok(if tz > 0 { 1 } else { 0 })
}
