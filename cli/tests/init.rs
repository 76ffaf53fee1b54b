//! `zreap init` / `zreap run --init`: the container init, on real processes.
//! Terminal tests run on a pty whose session zreap leads; race tests slow the
//! init down with strace's delay injection.

mod common;

use common::{become_subreaper, descendants, kill_tree, reap_pids, require_shim, run_with_deadline, zreap};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// Waits for `child` until the deadline; past it, SIGKILLs the child and
/// every descendant, reaps them and returns None.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            kill_tree(child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process running on a new pty, as the leader of a session whose
/// controlling terminal it is; everything written to the terminal is collected.
struct Pty {
    master: std::fs::File,
    out: Arc<Mutex<Vec<u8>>>,
    /// Sent once the reader thread has read everything (EIO: no slave fd left).
    eof: mpsc::Receiver<()>,
    child: Child,
}

impl Pty {
    fn spawn(program: &std::path::Path, args: &[&str]) -> Pty {
        become_subreaper();
        let (mut m, mut s) = (0, 0);
        // SAFETY: openpty with valid out-pointers and no name/termios/winsize.
        let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // openpty's fds are inheritable: a child that another test thread
        // spawns meanwhile would keep the terminal open (and the reader's EOF away).
        for fd in [m, s] {
            // SAFETY: fcntl on the two fds just opened.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: openpty returned two fresh fds that we now own.
        let master = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(m) });
        // SAFETY: as above.
        let slave = unsafe { OwnedFd::from_raw_fd(s) };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and an ioctl on fd 0 are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let child = cmd.spawn().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = out.clone();
        let (done, eof) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave fd is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = done.send(());
        });
        Pty { master, out, eof, child }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `text`.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + LIMIT;
        while !self.output().contains(text) {
            if Instant::now() > deadline || self.child.try_wait().unwrap().is_some() {
                let _ = wait_or_kill(&mut self.child, Duration::ZERO);
                panic!("the terminal never showed {text:?}: {:?}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Waits for the child, then for the reader thread to have read all
    /// that the terminal's processes wrote (it may lag behind their exit).
    fn wait(&mut self) -> Option<std::process::ExitStatus> {
        let status = wait_or_kill(&mut self.child, LIMIT);
        let _ = self.eof.recv_timeout(Duration::from_secs(10));
        status
    }
}

/// `strace` with a delay injected into `syscall` of every traced process,
/// then `zreap ARGS`; just `zreap ARGS` when strace is missing.
fn slowed(syscall: &str, args: &[&str]) -> (std::path::PathBuf, Vec<String>) {
    let zreap = zreap();
    if Command::new("strace").arg("-V").stdout(Stdio::null()).status().is_ok_and(|s| s.success()) {
        let mut v: Vec<String> = ["-f", "-I4", "-o", "/dev/null", "-e"].map(String::from).to_vec();
        v.push(format!("trace={syscall}"));
        v.push("-e".into());
        v.push(format!("inject={syscall}:delay_enter=300000"));
        v.push(zreap.display().to_string());
        v.extend(args.iter().map(|s| s.to_string()));
        ("strace".into(), v)
    } else {
        println!("note: strace is missing: the race is not widened");
        (zreap, args.iter().map(|s| s.to_string()).collect())
    }
}

/// CMD counts the SIGINTs it gets: after the first, it asks the init to
/// forward SIGUSR1, which comes after any forwarded copy of SIGINT; it exits
/// with the count.
const COUNT_INTS: &str = r#"
import os, signal, sys
sigs = {signal.SIGINT, signal.SIGUSR1}
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
print("started", flush=True)
ints = 0
while True:
    info = signal.sigwaitinfo(sigs)
    if info.si_signo == signal.SIGUSR1:
        break
    ints += 1
    if ints == 1:
        os.kill(os.getppid(), signal.SIGUSR1)
print("ints", ints, flush=True)
sys.exit(ints)
"#;

#[test]
fn one_ctrl_c_is_one_sigint() {
    require_shim("one_ctrl_c_is_one_sigint");
    // The init's forwarding is slowed down, so a second copy would arrive
    // after CMD took the first.
    let (prog, args) = slowed("kill", &["run", "--init", "--", "python3", "-c", COUNT_INTS]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut pty = Pty::spawn(&prog, &args);
    pty.expect("started");
    pty.send(b"\x03");
    let status = pty.wait().expect("the init did not exit");
    assert_eq!(status.code(), Some(1), "one ^C, one SIGINT: {:?}", pty.output());
}

#[test]
fn group_mode_hands_the_terminal_over_before_exec() {
    require_shim("group_mode_hands_the_terminal_over_before_exec");
    // CMD reads the terminal at once; the init is slowed in every ioctl. A
    // hand-over after the spawn leaves CMD stopped by SIGTTIN for good.
    let (prog, args) = slowed("ioctl", &["run", "--init", "-g", "--", "head", "-c", "3"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut pty = Pty::spawn(&prog, &args);
    pty.send(b"ab\n");
    let status = pty.wait();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "CMD hung: {:?}", pty.output());
}

#[test]
fn unknown_options_are_usage_errors() {
    for args in [&["run", "--init", "--yolo", "--", "true"][..], &["run", "--yolo", "true"]] {
        let out = run_with_deadline(Command::new(zreap()).args(args), LIMIT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unexpected argument '--yolo'"), "{err}");
    }
    // After the command's name, options are the command's.
    let out = run_with_deadline(Command::new(zreap()).args(["run", "--init", "sh", "-c", "exit 4"]), LIMIT);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}

/// Starts `zreap ARGS -- sh -c SCRIPT`, waits for the script's "started"
/// line, sends `sig` to zreap and returns zreap's exit code.
fn signal_init(args: &[&str], script: &str, sig: i32) -> Option<i32> {
    become_subreaper();
    let mut cmd = Command::new(zreap());
    cmd.args(args).args(["--", "sh", "-c", script]).stdin(Stdio::null()).stdout(Stdio::piped());
    // The test harness ignores SIGPIPE, which the init would pass on ignored.
    // SAFETY: signal() is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        })
    };
    let mut child = cmd.spawn().unwrap();
    let line = common::first_line(child.stdout.take().unwrap(), LIMIT);
    assert_eq!(line.as_deref().map(str::trim), Some("started"));
    // SAFETY: signal our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    wait_or_kill(&mut child, LIMIT).and_then(|s| s.code())
}

#[test]
fn every_catchable_signal_is_forwarded() {
    require_shim("every_catchable_signal_is_forwarded");
    let sigs = [
        libc::SIGALRM,
        libc::SIGPWR,
        libc::SIGIO,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGFPE,
        libc::SIGSYS,
        libc::SIGSTKFLT,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGPIPE,
        libc::SIGHUP,
        libc::SIGWINCH,
        libc::SIGRTMIN() + 1,
    ];
    for sig in sigs {
        let script = format!("trap 'exit 42' {sig}; echo started; while :; do sleep 0.05; done");
        let code = signal_init(&["run", "--init"], &script, sig);
        assert_eq!(code, Some(42), "signal {sig} was not forwarded (or killed the init)");
    }
}

fn init_out(args: &[&str]) -> std::process::Output {
    become_subreaper();
    run_with_deadline(Command::new(zreap()).arg("init").args(args), LIMIT)
}

#[test]
fn init_exit_statuses_and_remap() {
    require_shim("init_exit_statuses_and_remap");
    assert_eq!(init_out(&["--", "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(init_out(&["--", "sh", "-c", "kill -KILL $$"]).status.code(), Some(137));
    assert_eq!(init_out(&["-e", "7", "-e", "9", "--", "sh", "-c", "exit 7"]).status.code(), Some(0));
    assert_eq!(init_out(&["-e", "137", "--", "sh", "-c", "kill -KILL $$"]).status.code(), Some(0));
    assert_eq!(init_out(&["-e", "7", "--", "sh", "-c", "exit 8"]).status.code(), Some(8));
    assert_eq!(init_out(&["--", "/nonexistent/cmd"]).status.code(), Some(127));
    for bad in [&["-e", "300", "--", "true"][..], &["-r", "TERM", "--", "true"], &["--yolo", "--", "true"], &[]] {
        assert_eq!(init_out(bad).status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn init_environment_cwd_and_fds() {
    require_shim("init_environment_cwd_and_fds");
    let shim = common::shim().unwrap();
    // CMD keeps the cwd, gets the shim, and LISTEN_PID names CMD; the init
    // itself moved to / and closed the inherited fd 5.
    let script = "echo \"$LD_PRELOAD|$ZREAP_REAP|$LISTEN_PID|$$|$(pwd)\"; \
                  ls -l /proc/$PPID/cwd | sed 's/.*-> //'; ls /proc/$PPID/fd/5 2>/dev/null || echo closed";
    // LISTEN_PID must name the init: a shell in between would change it, so
    // set it through a wrapper that execs zreap with its own pid.
    let out = run_with_deadline(
        Command::new("sh")
            .args(["-c", "cd /tmp; export LISTEN_PID=$$; exec 5>&2; exec \"$0\" init -- sh -c \"$1\""])
            .arg(zreap())
            .arg(script),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    let f: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(f[0], shim.display().to_string());
    assert_eq!(f[1], "handler");
    assert_eq!(f[2], f[3], "LISTEN_PID is CMD's pid");
    assert_eq!(f[4], "/tmp");
    assert_eq!(lines[1], "/", "the init chdirs to /");
    assert_eq!(lines[2], "closed", "the init closed its inherited fd 5");
    let off = init_out(&["--reap", "off", "--", "sh", "-c", "echo \"${LD_PRELOAD-none}\""]);
    assert_eq!(String::from_utf8_lossy(&off.stdout).trim(), "none");
}

#[test]
fn init_rewrites_and_drops_signals() {
    require_shim("init_rewrites_and_drops_signals");
    // TERM arrives as USR1.
    let code = signal_init(
        &["init", "-r", "TERM:USR1"],
        "trap 'exit 41' USR1; trap 'exit 15' TERM; echo started; while :; do sleep 0.05; done",
        libc::SIGTERM,
    );
    assert_eq!(code, Some(41));
    // HUP dropped, then TERM arrives (sent after HUP: the init reads them in
    // signal-number order from its signalfd anyway).
    let mut child = Command::new(zreap())
        .args(["init", "-r", "HUP:0", "--", "sh", "-c"])
        .arg("trap 'exit 1' HUP; trap 'exit 43' TERM; echo started; while :; do sleep 0.05; done")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    become_subreaper();
    let line = common::first_line(child.stdout.take().unwrap(), LIMIT);
    assert_eq!(line.as_deref().map(str::trim), Some("started"));
    // SAFETY: signal our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_or_kill(&mut child, LIMIT).and_then(|s| s.code()), Some(43));
}

#[test]
fn init_pause_and_group() {
    // -P: no command, exit 0 on TERM.
    let mut child = Command::new(zreap()).args(["init", "-P"]).stderr(Stdio::piped()).spawn().unwrap();
    // The signal may come before the init blocked it (then it dies of it):
    // wait until it has a signalfd.
    let deadline = Instant::now() + LIMIT;
    while !std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .any(|e| std::fs::read_link(e.unwrap().path()).is_ok_and(|l| l.to_string_lossy().contains("signalfd")))
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signal our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_or_kill(&mut child, LIMIT).and_then(|s| s.code()), Some(0));
    // -g: the whole group gets the signal.
    let code = signal_init(&["init", "-g"], "sleep 30 & trap 'wait; exit 44' TERM; echo started; wait", libc::SIGTERM);
    assert_eq!(code, Some(44));
}

#[test]
fn init_kill_group_ends_leftovers() {
    require_shim("init_kill_group_ends_leftovers");
    let out = init_out(&[
        "--kill-group",
        "--grace",
        "1",
        "--",
        "sh",
        "-c",
        "sleep 30 & echo $!; (trap '' TERM; sleep 30) & echo $!",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 2, "{out:?}");
    let alive: Vec<i32> =
        pids.iter().copied().filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists()).collect();
    reap_pids(&alive);
    assert!(alive.is_empty(), "leftovers survived --kill-group: {alive:?}");
}

#[test]
fn init_as_pid_1_reaps_zombies() {
    require_shim("init_as_pid_1_reaps_zombies");
    // CMD leaves an orphan that exits while CMD runs: as PID 1 the init reaps it.
    let out = run_with_deadline(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc", "--"])
            .arg(zreap())
            .args(["init", "-w", "--", "sh", "-c", "(sleep 0.1 &); sleep 1; echo $PPID; exit 5"]),
        LIMIT,
    );
    if out.status.code() != Some(5) && out.stdout.is_empty() {
        println!("note: PID 1 test skipped: unshare failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        return;
    }
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "the init is PID 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reaped orphan"), "{out:?}");
}

#[test]
fn setsid_and_single_modes_deliver_one_ctrl_c() {
    require_shim("setsid_and_single_modes_deliver_one_ctrl_c");
    for mode in ["--setsid", "--single"] {
        let (prog, args) = slowed("kill", &["init", mode, "--", "python3", "-c", COUNT_INTS]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut pty = Pty::spawn(&prog, &args);
        pty.expect("started");
        pty.send(b"\x03");
        let status = pty.wait().expect("the init did not exit");
        assert_eq!(status.code(), Some(1), "{mode}: one ^C, one SIGINT: {:?}", pty.output());
    }
    // --setsid: CMD leads a session whose controlling terminal is the pty.
    let mut pty = Pty::spawn(&zreap(), &["init", "--setsid", "--", "sh", "-c", "ps -o sid=,tty= -p $$; echo $$"]);
    assert_eq!(pty.wait().and_then(|s| s.code()), Some(0));
    let out = pty.output();
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{out:?}");
    assert_eq!(words[0], words[2], "CMD leads its session: {out:?}");
    assert!(words[1].starts_with("pts/"), "CMD has the pty as controlling terminal: {out:?}");
}

#[test]
fn parent_death_signal_is_forwarded() {
    require_shim("parent_death_signal_is_forwarded");
    become_subreaper();
    let dir = std::env::temp_dir().join(format!("zreap-init-p-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mark = dir.join("got");
    // bash starts the init with -p USR1 and exits once CMD runs.
    let script = r#"coproc { exec "$0" init -p USR1 -- sh -c "trap 'echo got > $1; exit 0' USR1; echo started; while :; do sleep 0.05; done" "$1"; }
read -r line <&"${COPROC[0]}"; echo "$line $COPROC_PID""#;
    let out = run_with_deadline(Command::new("bash").args(["-c", script]).arg(zreap()).arg(&mark), LIMIT);
    let text = String::from_utf8_lossy(&out.stdout);
    let init: i32 = text.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("started PID");
    let deadline = Instant::now() + LIMIT;
    while !mark.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = mark.exists();
    reap_pids(&[init]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(got, "CMD never got the init's parent-death signal: {out:?}");
}

/// A symlink named `name` to zreap, in a fresh directory of its own.
fn persona(name: &str) -> std::path::PathBuf {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("zreap-persona-{}-{n}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(zreap(), &link).unwrap();
    link
}

#[test]
fn personalities_take_the_peers_command_lines() {
    become_subreaper();
    let run = |cmd: &mut Command| run_with_deadline(cmd, LIMIT);
    let tini = persona("tini");
    assert_eq!(run(Command::new(&tini).args(["-e", "3", "--", "sh", "-c", "exit 3"])).status.code(), Some(0));
    assert_eq!(run(Command::new(&tini).args(["--", "sh", "-c", "kill -TERM $$"])).status.code(), Some(143));
    assert_eq!(run(Command::new(&tini).args(["--yolo", "true"])).status.code(), Some(1), "tini usage error");
    assert_eq!(run(Command::new(&tini).arg("-h")).status.code(), Some(0));
    // -s and -w are accepted; CMD runs in its own process group.
    let out = run(Command::new(&tini).args(["-s", "-w", "--", "sh", "-c", "ps -o pgid= -p $$; echo $$"]));
    let w: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    assert_eq!(w.len(), 2, "{out:?}");
    assert_eq!(w[0], w[1], "tini: CMD in its own process group");

    let dumb = persona("dumb-init");
    let script = "ps -o sid= -p $$; echo $$; exit 4";
    let out = run(Command::new(&dumb).args(["sh", "-c", script]));
    assert_eq!(out.status.code(), Some(4));
    let w: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    assert_eq!(w[0], w[1], "dumb-init: CMD leads a session: {out:?}");
    let out = run(Command::new(&dumb).args(["sh", "-c", script]).env("DUMB_INIT_SETSID", "0"));
    let w: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    assert_ne!(w[0], w[1], "DUMB_INIT_SETSID=0: no new session: {out:?}");
    assert_eq!(run(Command::new(&dumb).args(["--yolo", "true"])).status.code(), Some(1));
    let code =
        signal_init_with(&dumb, &["-r", "15:10"], "trap 'exit 41' USR1; echo started; while :; do sleep 0.05; done");
    assert_eq!(code, Some(41), "dumb-init -r 15:10");

    let cat = persona("catatonit");
    assert_eq!(run(Command::new(&cat).args(["--", "sh", "-c", "exit 6"])).status.code(), Some(6));
    assert_eq!(run(Command::new(&cat).arg("--yolo")).status.code(), Some(1));
    for p in [tini, dumb, cat] {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}

/// As `signal_init`, SIGTERM to `program ARGS sh -c SCRIPT`.
fn signal_init_with(program: &std::path::Path, args: &[&str], script: &str) -> Option<i32> {
    let mut child = Command::new(program)
        .args(args)
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(child.stdout.take().unwrap(), LIMIT);
    assert_eq!(line.as_deref().map(str::trim), Some("started"));
    // SAFETY: signal our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_or_kill(&mut child, LIMIT).and_then(|s| s.code())
}

#[test]
fn terminal_programs_and_shell_jobs_work_on_a_pty() {
    require_shim("terminal_programs_and_shell_jobs_work_on_a_pty");
    // tac reads the terminal until ^D.
    let mut pty = Pty::spawn(&zreap(), &["init", "--", "sh", "-c", "echo started; exec tac"]);
    pty.expect("started");
    pty.send(b"one\ntwo\n\x04");
    assert_eq!(pty.wait().and_then(|s| s.code()), Some(0), "{:?}", pty.output());
    assert!(pty.output().contains("two\r\none"), "{:?}", pty.output());
    // A job-control shell: cat in a background job stops on SIGTTIN, fg
    // gives it the terminal.
    for mode in ["-g", "--setsid"] {
        let script = "cat > /dev/null & sleep 0.3; echo started; fg %1 >/dev/null; echo done $?";
        let mut pty = Pty::spawn(&zreap(), &["init", mode, "--", "bash", "--norc", "-m", "-c", script]);
        pty.expect("started");
        pty.send(b"x\n\x04");
        assert_eq!(pty.wait().and_then(|s| s.code()), Some(0), "{mode}: {:?}", pty.output());
        assert!(pty.output().contains("done 0"), "{mode}: {:?}", pty.output());
    }
}

/// Waits until `pid` is in state `want` (deadline: panics).
fn await_state(pid: i32, want: char) {
    let deadline = Instant::now() + LIMIT;
    while common::state_ppid(pid).map(|(s, _)| s) != Some(want) {
        assert!(Instant::now() < deadline, "{pid} never reached state {want}: {:?}", common::state_ppid(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn setsid_job_control_suspends_the_init_and_debug_lines() {
    require_shim("setsid_job_control_suspends_the_init_and_debug_lines");
    become_subreaper();
    let mut child = Command::new(zreap())
        .args(["init", "--setsid", "-v", "--", "sh", "-c", "echo started $$; exec sleep 30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(child.stdout.take().unwrap(), LIMIT).unwrap_or_default();
    let cmd: i32 = line.trim().strip_prefix("started ").and_then(|p| p.parse().ok()).expect("started PID");
    let init = child.id() as i32;
    // SAFETY: signal our own child.
    unsafe { libc::kill(init, libc::SIGTSTP) };
    await_state(cmd, 'T');
    await_state(init, 'T');
    // SAFETY: as above.
    unsafe { libc::kill(init, libc::SIGCONT) };
    await_state(cmd, 'S');
    // SAFETY: as above.
    unsafe { libc::kill(init, libc::SIGTERM) };
    let status = wait_or_kill(&mut child, LIMIT);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(143), "{err}");
    assert!(err.contains("forwarding SIGTSTP as SIGSTOP") && err.contains("suspending self"), "{err}");
}

/// The signal mask and the ignored signals the init was started with reach
/// CMD (tini's rule). Exceptions: SIGPIPE (Rust ignores it before the init's
/// code runs, so the init cannot tell and gives CMD the default) and glibc's
/// internal signals 32 and 33 (glibc installs its own handlers in the init).
#[test]
fn cmd_gets_the_mask_and_ignored_signals_the_init_started_with() {
    become_subreaper();
    // python3 blocks USR2 and ignores URG, prints its own masks, then execs the init.
    let wrapper = "import os, signal, sys\n\
                   signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})\n\
                   signal.signal(signal.SIGURG, signal.SIG_IGN)\n\
                   for line in open('/proc/self/status'):\n    \
                       if line.startswith(('SigBlk', 'SigIgn')): sys.stderr.write(line)\n\
                   sys.stderr.flush()\n\
                   os.execv(sys.argv[1], sys.argv[1:])\n";
    let out = run_with_deadline(
        Command::new("python3").args(["-c", wrapper]).arg(zreap()).args([
            "init",
            "--reap",
            "off",
            "--",
            "grep",
            "-E",
            "^Sig(Blk|Ign)",
            "/proc/self/status",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let mask = |text: &str, key: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {text:?}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let (started, cmd) = (String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let bit = |sig: i32| 1u64 << (sig - 1);
    let glibc = bit(32) | bit(33);
    assert_eq!(mask(&cmd, "SigBlk"), mask(&started, "SigBlk"), "mask: init started with {started:?}, CMD has {cmd:?}");
    assert_ne!(mask(&cmd, "SigBlk") & bit(libc::SIGUSR2), 0);
    assert_eq!(
        mask(&cmd, "SigIgn") & !glibc,
        mask(&started, "SigIgn") & !(bit(libc::SIGPIPE) | glibc),
        "ignored: {started:?} vs {cmd:?}"
    );
    assert_ne!(mask(&cmd, "SigIgn") & bit(libc::SIGURG), 0);
}

/// A fault in the init's own code (a SIGSEGV the kernel raises, not one sent
/// with kill) ends the init: it is not caught and forwarded to CMD. gdb makes
/// the running init jump to address 0.
#[test]
fn a_fault_in_the_init_is_not_forwarded() {
    become_subreaper();
    let mut init = Command::new(zreap())
        .args(["init", "--reap", "off", "--", "sh", "-c", "echo started; exec sleep 60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    init.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    let init_pid = init.id() as i32;
    let cmd = descendants(init_pid);
    assert_eq!(cmd.len(), 1, "CMD: {cmd:?}");
    let gdb = run_with_deadline(
        Command::new("gdb").args(["-p", &init_pid.to_string(), "-batch", "-ex", "set $pc = 0", "-ex", "detach"]),
        LIMIT,
    );
    assert!(gdb.status.success(), "gdb: {gdb:?}");
    let status = wait_or_kill(&mut init, LIMIT).expect("the init ended");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "the init's own fault must end it: {status:?}");
    // CMD got no SIGSEGV: it still runs (now our child: we are a subreaper).
    let alive = common::state_ppid(cmd[0]).is_some_and(|(state, _)| state != 'Z');
    // SAFETY: kill and reap the CMD we just saw.
    unsafe { libc::kill(cmd[0], libc::SIGKILL) };
    reap_pids(&cmd);
    assert!(alive, "CMD did not survive the init's fault: it was forwarded a signal");
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zreap-init-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_script_without_shebang_runs_with_sh_and_the_path_search_stops_as_execvp_does() {
    use std::os::unix::fs::PermissionsExt;
    become_subreaper();
    let dir = scratch("enoexec");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let script = a.join("prog");
    std::fs::write(&script, "echo \"sh ran $0 $1\"; exit 5\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = init_out(&["--reap", "off", "--", script.to_str().unwrap(), "x"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("sh ran {} x\n", script.display()));
    // Found through PATH, under each personality.
    for name in ["tini", "dumb-init"] {
        let peer = persona(name);
        let out = run_with_deadline(Command::new(&peer).args(["prog", "y"]).env("PATH", &a), LIMIT);
        let _ = std::fs::remove_dir_all(peer.parent().unwrap());
        assert_eq!(out.status.code(), Some(5), "{name}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("sh ran {} y\n", script.display()), "{name}");
    }
    // A symbolic link loop first in PATH ends the search (ELOOP), as in execvp.
    std::os::unix::fs::symlink("prog", b.join("prog")).unwrap();
    let path = format!("{}:{}", b.display(), a.display());
    let out =
        run_with_deadline(Command::new(zreap()).args(["init", "--reap", "off", "--", "prog"]).env("PATH", path), LIMIT);
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Too many levels of symbolic links"), "{out:?}");
    assert!(out.stdout.is_empty(), "the search went on past the loop: {out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A shell leads a session on a pty and runs an init in `--setsid` mode from
/// it (as a child, or as the leader of a session of its own without a
/// controlling terminal): the shell keeps its terminal. As root the init
/// could take it (TIOCSCTTY with argument 1).
#[test]
fn setsid_mode_leaves_the_callers_terminal_alone() {
    let dumb = persona("dumb-init");
    let zreap = zreap();
    let (z, d) = (zreap.to_str().unwrap(), dumb.to_str().unwrap());
    let runs: [&[&str]; 4] = [
        &[z, "init", "--reap", "off", "--setsid", "--", "true"],
        &[d, "true"],
        &["setsid", "-w", z, "init", "--reap", "off", "--setsid", "--", "true"],
        &["setsid", "-w", d, "true"],
    ];
    for run in runs {
        let mut args = vec!["-c", "\"$@\"; echo \"rc $? tty $(ps -o tty= -p $$)\"", "sh"];
        args.extend_from_slice(run);
        let mut pty = Pty::spawn(std::path::Path::new("sh"), &args);
        assert_eq!(pty.wait().and_then(|s| s.code()), Some(0), "{run:?}: {:?}", pty.output());
        let out = pty.output();
        assert!(out.contains("rc 0 tty pts/"), "{run:?}: the shell lost its terminal: {out:?}");
    }
    let _ = std::fs::remove_dir_all(dumb.parent().unwrap());
}

#[test]
fn exec_failures_exit_as_the_peers_do() {
    become_subreaper();
    let dir = scratch("execfail");
    let looping = dir.join("loop");
    std::os::unix::fs::symlink("loop", &looping).unwrap();
    let looping = looping.to_str().unwrap();
    let missing = "/nonexistent/cmd";
    let code =
        |prog: &std::path::Path, args: &[&str]| run_with_deadline(Command::new(prog).args(args), LIMIT).status.code();
    // zreap init: 127 not found, 126 otherwise (as a shell).
    assert_eq!(code(&zreap(), &["init", "--reap", "off", "--", missing]), Some(127));
    assert_eq!(code(&zreap(), &["init", "--reap", "off", "--", looping]), Some(126));
    // tini: 127 not found, 126 not permitted, 1 otherwise.
    let tini = persona("tini");
    assert_eq!(code(&tini, &["--", missing]), Some(127));
    assert_eq!(code(&tini, &["--", "/"]), Some(126));
    assert_eq!(code(&tini, &["--", looping]), Some(1));
    // dumb-init: 2 whatever the error.
    let dumb = persona("dumb-init");
    for cmd in [missing, "/", looping] {
        assert_eq!(code(&dumb, &[cmd]), Some(2), "dumb-init {cmd}");
        assert_eq!(code(&dumb, &["-c", cmd]), Some(2), "dumb-init -c {cmd}");
    }
    for p in [tini, dumb] {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sh -c` CMD that reports TTIN, TTOU and TSTP and exits 0 on SIGRTMIN+1.
fn job_control_reporter() -> String {
    format!(
        "trap 'echo got TTIN' TTIN; trap 'echo got TTOU' TTOU; trap 'echo got TSTP' TSTP; \
         trap 'exit 0' {}; echo started; while :; do sleep 0.05; done",
        libc::SIGRTMIN() + 1
    )
}

/// tini (and zreap's own default and `-g`) ignore TTIN and TTOU sent to the
/// init, as tini does; catatonit TSTP too; the rest is forwarded.
#[test]
fn tini_modes_do_not_forward_ttin_and_ttou() {
    become_subreaper();
    let tini = persona("tini");
    let catatonit = persona("catatonit");
    let zreap = zreap();
    let tty_io = [libc::SIGTTIN, libc::SIGTTOU];
    let runs: [(&std::path::Path, &[&str], &[i32]); 4] = [
        (&zreap, &["init", "--reap", "off", "--"], &tty_io),
        (&zreap, &["init", "--reap", "off", "-g", "--"], &tty_io),
        (&tini, &["--"], &tty_io),
        (&catatonit, &["--"], &[libc::SIGTTIN, libc::SIGTTOU, libc::SIGTSTP]),
    ];
    for (prog, args, dropped) in runs {
        let mut child = Command::new(prog)
            .args(args)
            .args(["sh", "-c", &job_control_reporter()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 8];
        stdout.read_exact(&mut first).unwrap();
        for &sig in dropped.iter().chain(&[libc::SIGRTMIN() + 1]) {
            // SAFETY: signal our own child.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
        let status = wait_or_kill(&mut child, LIMIT);
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{args:?}: {rest:?}");
        assert_eq!(rest, "", "{prog:?} {args:?}: a job-control signal forwarded");
    }
    for p in [tini, catatonit] {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}

/// dumb-init suspends itself on TSTP, TTIN and TTOU in single-child mode
/// too: a shell waiting for the init sees the job stop.
#[test]
fn single_mode_job_control_suspends_the_init() {
    become_subreaper();
    let dumb = persona("dumb-init");
    let zreap = zreap();
    let runs: [(&std::path::Path, &[&str]); 2] =
        [(&zreap, &["init", "--reap", "off", "--single", "--"]), (&dumb, &["-c"])];
    for (prog, args) in runs {
        for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
            // In a group of its own, whose leader's parent (this test) is in
            // another group of the session: not an orphaned group, whose
            // members the kernel does not stop for TSTP, TTIN and TTOU (this
            // test's own group is orphaned when its parent is gone).
            let mut child = Command::new(prog)
                .process_group(0)
                .args(args)
                .args(["sh", "-c", "echo started $$; exec sleep 30"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let line = common::first_line(child.stdout.take().unwrap(), LIMIT).unwrap_or_default();
            let cmd: i32 = line.trim().strip_prefix("started ").and_then(|p| p.parse().ok()).expect("started PID");
            let init = child.id() as i32;
            // SAFETY: signal our own child.
            unsafe { libc::kill(init, sig) };
            await_state(init, 'T');
            await_state(cmd, 'T');
            // SAFETY: as above.
            unsafe { libc::kill(init, libc::SIGCONT) };
            await_state(cmd, 'S');
            // SAFETY: as above.
            unsafe { libc::kill(init, libc::SIGTERM) };
            assert_eq!(wait_or_kill(&mut child, LIMIT).and_then(|s| s.code()), Some(143), "{args:?} {sig}");
        }
    }
    let _ = std::fs::remove_dir_all(dumb.parent().unwrap());
}
