//! `echo`: the echo-server scenario of tests/echo_servers.rs, round after
//! round. The server is examples/echo_server.c in Rust: `install(0)`, then
//! one plain fork() child per connection, never waited for. A round starts a
//! client that opens 50 connections, checks one echo on each and is killed
//! with SIGKILL, so all 50 server children exit at once; once they have, the
//! server must have no zombie left.

use crate::util::{self, Res, Violations};
use crate::zr;
use libc::c_int;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CASES: &[&str] = &["rounds"];

const CONNECTIONS: usize = 50;
const LINE_LIMIT: Duration = Duration::from_secs(20);

fn helper(args: &[&str]) -> Res<Child> {
    Command::new(util::self_exe().to_str().unwrap_or("/proc/self/exe"))
        .arg("__helper")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {args:?}: {e}"))
}

fn first_line(child: &Child) -> Option<String> {
    util::read_line(child.stdout.as_ref()?.as_raw_fd(), LINE_LIMIT)
}

pub fn worker(case: &str, rounds: u64, seed: u64) -> Res<String> {
    if case != "rounds" {
        return Err(format!("unknown case {case}"));
    }
    // The server's children come here if it dies.
    util::become_subreaper()?;
    let mut server = helper(&["echo-server"])?;
    let result = run_rounds(&mut server, rounds);
    let _ = server.kill();
    let _ = server.wait();
    util::reap_orphans(Duration::from_secs(10));
    let mut v = Violations::default();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            v.add(e);
            String::new()
        }
    };
    if let Err(e) = util::no_children_left() {
        v.add(e);
    }
    v.finish(format!("{summary}; seed {seed}"))
}

fn run_rounds(server: &mut Child, rounds: u64) -> Res<String> {
    let line = first_line(server).ok_or("the echo server did not print its port")?;
    let port: u16 =
        line.strip_prefix("listening on ").and_then(|p| p.parse().ok()).ok_or(format!("bad line {line:?}"))?;
    let spid = server.id() as i32;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let mut client = helper(&["echo-client", &port.to_string(), &CONNECTIONS.to_string()])?;
        let ready = first_line(&client);
        let _ = client.kill();
        let _ = client.wait();
        if ready.as_deref() != Some("ready") {
            return Err(format!("round {round}: the client did not get {CONNECTIONS} echoes: {ready:?}"));
        }
        // The children exit once they read EOF; then the handler reaps them.
        let t = Instant::now();
        let deadline = t + Duration::from_secs(20);
        loop {
            let kids = util::children_of(spid);
            if kids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let zombies = kids.iter().filter(|(_, s)| *s == 'Z').count();
                return Err(format!(
                    "round {round}: {zombies} zombie(s) and {} live child(ren) of the server after 20 s",
                    kids.len() - zombies
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        slowest = slowest.max(t.elapsed());
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("round {round}: the server died: {status}"));
        }
    }
    Ok(format!(
        "{rounds} rounds of {CONNECTIONS} connections closed at once in {:.1} s: 0 zombies after every round \
         (slowest round until the server had no child: {:.0} ms)",
        started.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1e3
    ))
}

/// `__helper echo-server`: examples/echo_server.c, in Rust.
pub fn server() -> i32 {
    if let Err(e) = zr::install(0) {
        eprintln!("install(0): {}", util::errno_name(e));
        return 1;
    }
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bind: {e}");
            return 1;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("listening on {port}");
    let _ = std::io::stdout().flush();
    let lfd = listener.as_raw_fd();
    loop {
        // SAFETY: accept on our listening socket; NULL address pointers are allowed.
        let conn = unsafe { libc::accept(lfd, std::ptr::null_mut(), std::ptr::null_mut()) };
        if conn == -1 {
            if util::errno() == libc::EINTR {
                continue;
            }
            eprintln!("accept: {}", std::io::Error::last_os_error());
            return 1;
        }
        // SAFETY: the server is single-threaded; the child only makes raw
        // system calls and _exits.
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: closing an inherited fd.
                unsafe { libc::close(lfd) };
                echo(conn)
            }
            -1 => eprintln!("fork: {}", std::io::Error::last_os_error()),
            _ => {}
        }
        // SAFETY: the parent's copy of the connection.
        unsafe { libc::close(conn) };
    }
}

/// A server child: echoes until EOF, then exits 0.
fn echo(fd: c_int) -> ! {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reads into a stack buffer of the given size.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == -1 && util::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        let mut off = 0;
        while off < n as usize {
            // SAFETY: writes the bytes just read.
            let w = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), n as usize - off) };
            if w == -1 && util::errno() == libc::EINTR {
                continue;
            }
            if w <= 0 {
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(0) };
            }
            off += w as usize;
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

/// `__helper echo-client PORT N`: N connections with one echo each, then
/// "ready", then wait to be killed.
pub fn client(args: &[String]) -> i32 {
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(0);
    let n: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(CONNECTIONS);
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let line = format!("hello {i}\n");
        let echoed = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.write_all(line.as_bytes())?;
            let mut reader = BufReader::new(s.try_clone()?);
            let mut back = String::new();
            reader.read_line(&mut back)?;
            Ok((s, back))
        });
        match echoed {
            Ok((s, back)) if back == line => conns.push(s),
            other => {
                eprintln!("connection {i}: {other:?}");
                return 1;
            }
        }
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
