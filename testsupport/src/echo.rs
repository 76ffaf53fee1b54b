//! The echo-server demonstration used by `capi/tests/echo_servers.rs` (the CLI's
//! `zreap demo`, in cli/src/demo.rs, runs the same scenario live).
//!
//! A server (`examples/echo_server*.c`) forks one child per TCP connection.
//! One *round* starts `examples/echo_client.c`, which opens [`CONNECTIONS`]
//! connections, checks one echoed line on each and prints `ready`; the round
//! then kills the client with SIGKILL, so every connection closes at once and
//! the server's children exit together. After [`SETTLE`] the round counts the
//! zombies whose parent is the server.
//!
//! A round reports the zombies it ADDED: the count after the round minus the
//! count before it. Zombies a leaky server left in earlier rounds stay there
//! (a later SIGCHLD may reap one of them, which only lowers the count), so
//! this is the number of exits of that round nobody reaped.
//!
//! Cleanup: the test process becomes a child subreaper, so when the server is
//! killed its leftover children are reparented to us instead of to PID 1
//! (which does not reap here); [`Server`]'s `Drop` kills the client and the
//! server and reaps exactly the pids that were the server's children.

use crate::{become_subreaper, build_c, children_of, first_line, proc_state_ppid, zombies_of};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The client program of a round.
pub const CLIENT_SRC: &str = "examples/echo_client.c";
/// The leaky classic: a SIGCHLD handler that calls `wait()` once.
pub const HANDWRITTEN_SRC: &str = "examples/echo_server_handwritten.c";
/// The same server with `zreap_install(0)` instead of the handler.
pub const ZREAP_SRC: &str = "examples/echo_server.c";
/// Connections per round; they all close at once when the client dies.
pub const CONNECTIONS: usize = 50;
/// Time the server gets to reap after the client is killed.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Limit for a program to print its first line (`listening on` / `ready`).
pub const LINE_DEADLINE: Duration = Duration::from_secs(20);

/// Makes this process a child subreaper (once), so orphans of the servers
/// are reparented here and [`Server`]'s `Drop` can reap them.
fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// A running echo server. Dropping it kills it (and a client still running)
/// and reaps everything it left behind, also when a test panics.
pub struct Server {
    child: Child,
    client: Option<Child>,
    pub pid: i32,
    pub port: u16,
    name: String,
}

impl Server {
    /// Starts `exe 0` and waits for its `listening on PORT` line.
    pub fn start(exe: &Path) -> Server {
        Server::start_with_env(exe, &[], &[])
    }

    /// Like [`Server::start`], with environment variables `set` added and
    /// `remove` removed (e.g. `LD_PRELOAD` and the shim's `ZREAP_*` settings).
    pub fn start_with_env(exe: &Path, set: &[(&str, &str)], remove: &[&str]) -> Server {
        become_subreaper();
        let mut command = Command::new(exe);
        for name in remove {
            command.env_remove(name);
        }
        command.envs(set.iter().copied());
        let mut child = command
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let pid = child.id() as i32;
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        let line = first_line(child.stdout.take().unwrap(), LINE_DEADLINE);
        let port =
            line.as_deref().and_then(|l| l.trim().strip_prefix("listening on ")).and_then(|p| p.parse::<u16>().ok());
        let mut server = Server { child, client: None, pid, port: 0, name };
        match port {
            Some(p) if p != 0 => server.port = p,
            _ => panic!(
                "{}: expected `listening on PORT` within {LINE_DEADLINE:?}, got {line:?} (status {:?})",
                server.name,
                server.child.try_wait()
            ),
        }
        server
    }

    /// Zombies whose parent is the server, now.
    pub fn zombies(&self) -> usize {
        zombies_of(self.pid).len()
    }

    /// Children of the server that have not exited yet.
    fn live_children(&self) -> usize {
        children_of(self.pid).into_iter().filter(|&p| matches!(proc_state_ppid(p), Some((s, _)) if s != 'Z')).count()
    }

    /// One round (see the module doc); returns the zombies it added.
    pub fn round(&mut self, client_exe: &Path) -> usize {
        let before = self.zombies();

        let mut client = Command::new(client_exe)
            .arg(self.port.to_string())
            .arg(CONNECTIONS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start echo_client");
        let out = client.stdout.take().unwrap();
        self.client = Some(client);
        let line = first_line(out, LINE_DEADLINE);
        let mut client = self.client.take().unwrap();
        if line.as_deref() != Some("ready\n") {
            let _ = client.kill();
            let status = client.wait();
            panic!(
                "{}: echo_client did not get {CONNECTIONS} echoes within {LINE_DEADLINE:?}: \
                 line {line:?}, status {status:?}, stderr: {}",
                self.name,
                stderr_of(&mut client)
            );
        }

        // SIGKILL: the kernel closes all connections at once.
        client.kill().expect("kill echo_client");
        client.wait().expect("reap echo_client");

        std::thread::sleep(SETTLE);
        // The children exit as soon as they read EOF; on a loaded machine give
        // the stragglers (not the server's reaping) a little more time.
        let deadline = Instant::now() + Duration::from_secs(10);
        if self.live_children() > 0 {
            while self.live_children() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // The last exits were just now: let the server's handler run.
            std::thread::sleep(Duration::from_millis(250));
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{}: the server died: {status}", self.name);
        }

        self.zombies().saturating_sub(before)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.client.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Everything the server forked, while it is still their parent. No
        // client is connected any more, so it forks nothing new.
        let orphans = children_of(self.pid);
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The server is gone: its children are ours now (we are a subreaper).
        // Reap exactly those pids; other children of this process are not ours
        // to wait for. A child still running gets until the deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left: Vec<i32> = orphans;
        while !left.is_empty() {
            left.retain(|&pid| {
                let mut status = 0;
                // SAFETY: waitpid on a specific pid with a valid status pointer.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                r == 0 // still running: keep trying; reaped or not ours: done
            });
            if Instant::now() > deadline {
                for &pid in &left {
                    // SAFETY: the pid is a child of this process (waitpid returned 0).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                for &pid in &left {
                    let mut status = 0;
                    // SAFETY: as above; blocks only until the SIGKILLed child exits.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                }
                break;
            }
            if !left.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Runs `rounds` rounds against a started copy of `server_exe`, with the
/// client `client_exe`; returns the zombies each round added. The server is
/// killed and everything reaped before this returns (or unwinds).
pub fn zombie_rounds_exe(server_exe: &Path, client_exe: &Path, rounds: usize) -> Vec<usize> {
    let mut server = Server::start(server_exe);
    (0..rounds).map(|_| server.round(client_exe)).collect()
}

/// Builds the server `server_src` and the client, then runs
/// [`zombie_rounds_exe`]. `build_c` is not safe to run for the same source
/// from two threads of one process at once: to run servers concurrently,
/// build first (on one thread) and call [`zombie_rounds_exe`].
pub fn zombie_rounds(server_src: &str, rounds: usize) -> Vec<usize> {
    let server = build_c(server_src);
    let client = build_c(CLIENT_SRC);
    zombie_rounds_exe(&server, &client, rounds)
}

/// Builds both servers and the client, runs `rounds` rounds against each
/// server concurrently, and returns (hand-written counts, zreap counts).
pub fn both_servers(rounds: usize) -> (Vec<usize>, Vec<usize>) {
    let client = build_c(CLIENT_SRC);
    let handwritten = build_c(HANDWRITTEN_SRC);
    let zreap = build_c(ZREAP_SRC);
    std::thread::scope(|s| {
        let h = s.spawn(|| zombie_rounds_exe(&handwritten, &client, rounds));
        let z = s.spawn(|| zombie_rounds_exe(&zreap, &client, rounds));
        let h = h.join();
        let z = z.join();
        match (h, z) {
            (Ok(h), Ok(z)) => (h, z),
            (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
        }
    })
}
