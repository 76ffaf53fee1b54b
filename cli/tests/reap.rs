//! `zreap reap` on real parents (cli/helpers/reap_parent.c and the `ps`
//! helpers): the zombies go, the parent carries on as before, and every
//! refusal says why. Every helper tree is killed and reaped when a test ends;
//! this process is a subreaper, so nothing outlives it.

mod common;

use common::{become_subreaper, build_helper, kill_tree, run_with_deadline, state_ppid, zreap, Helper};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// A running `reap_parent MODE N`.
struct Parent {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pid: i32,
    port: u16,
    /// (pid, waitpid status) of each zombie, as the helper saw them.
    kids: Vec<(i32, i32)>,
}

impl Parent {
    fn start(mode: &str, n: usize) -> Parent {
        become_subreaper();
        let exe = build_helper("reap_parent");
        let mut child = Command::new(&exe)
            .args([mode, &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start reap_parent");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut p = Parent { child, stdin, lines, pid: 0, port: 0, kids: Vec::new() };
        loop {
            let line = p.lines.recv_timeout(Duration::from_secs(30)).expect("reap_parent: no ready line");
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "child" => p.kids.push((f[1].parse().unwrap(), f[2].parse().unwrap())),
                "ready" => {
                    p.pid = f[1].parse().unwrap();
                    p.port = f.get(2).map_or(0, |s| s.parse().unwrap());
                    break;
                }
                _ => panic!("reap_parent: unexpected {line:?}"),
            }
        }
        assert_eq!(p.kids.len(), n);
        p
    }

    /// The "result ..." line, within 10 s.
    fn result(&self) -> String {
        let line = self.lines.recv_timeout(Duration::from_secs(10)).expect("no result line");
        assert!(line.starts_with("result "), "{line}");
        line
    }

    /// No line within `d` (the parent is still in its call).
    fn assert_silent(&self, d: Duration) {
        if let Ok(line) = self.lines.recv_timeout(d) {
            panic!("the parent left its call early: {line}");
        }
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
    }
}

/// The zombie children of `pid`.
fn zombies_of(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&p| state_ppid(p) == Some(('Z', pid)))
        .collect();
    v.sort_unstable();
    v
}

/// Waits until `pid` is in one of `states`.
fn wait_state(pid: i32, states: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !state_ppid(pid).is_some_and(|(s, _)| states.contains(s)) {
        assert!(Instant::now() < deadline, "{pid} never reached state {states}: {:?}", state_ppid(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `pid` has `n` zombie children.
fn wait_zombies(pid: i32, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while zombies_of(pid).len() != n {
        assert!(Instant::now() < deadline, "{pid} never had {n} zombies: {:?}", zombies_of(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn status_line(pid: i32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines().find(|l| l.starts_with(key)).unwrap().to_string()
}

fn reap(args: &[&str]) -> Output {
    run_with_deadline(Command::new(zreap()).arg("reap").args(args), LIMIT)
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What `zreap reap` prints for a waitpid status.
fn described(status: i32) -> String {
    if status & 0x7f == 0 {
        format!("exited with status {}", status >> 8)
    } else {
        assert_eq!(status, libc::SIGTERM, "the helper's children exit or die of SIGTERM");
        "killed by SIGTERM".to_string()
    }
}

/// Checks one "reaped PID (COMM): STATUS; ..." line per zombie, with the
/// status the helper saw, and the summary.
fn check_reaped(p: &Parent, stdout: &str) {
    for &(kid, status) in &p.kids {
        let want = format!("reaped {kid} (reap_parent): {}; {} will never see this status", described(status), p.pid);
        assert!(stdout.lines().any(|l| l == want), "missing {want:?} in:\n{stdout}");
    }
    let n = p.kids.len();
    assert!(stdout.contains(&format!("{n} of {n} zombie(s) of {} (reap_parent) reaped in ", p.pid)), "{stdout}");
}

/// A parent that never waits sits in the call of `mode` with `n` zombies:
/// `zreap reap --pid` takes every zombie, and the call goes on as if nothing
/// happened: it returns only when woken, normally, with the same signal mask.
fn carries_on(mode: &str, n: usize) {
    let p = Parent::start(mode, n);
    // After the helper's clock started: it prints its ready line after.
    let ready_at = Instant::now();
    let pid = p.pid;
    assert_eq!(zombies_of(pid).len(), n);
    wait_state(pid, if mode == "busy" { "R" } else { "S" });
    let mask = status_line(pid, "SigBlk");
    if mode == "nanosleep" {
        // Well into the 5 s sleep: a restart from scratch would show. The
        // sleep is long so that zreap reap, started late on a busy machine,
        // still finds the parent in it.
        std::thread::sleep(Duration::from_millis(1000));
    }
    // The reap stops the parent no earlier than this after its clock started.
    let waited = ready_at.elapsed();
    let out = reap(&["--pid", &pid.to_string()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    check_reaped(&p, &stdout);
    assert_eq!(zombies_of(pid), Vec::<i32>::new());
    assert_eq!(status_line(pid, "SigBlk"), mask);
    println!("{mode} {n}: {}", stdout.lines().last().unwrap());

    let mut p = p;
    if mode != "nanosleep" {
        p.assert_silent(Duration::from_millis(300));
    }
    match mode {
        "epoll" | "read" | "threads" => p.stdin.as_mut().unwrap().write_all(b"x").unwrap(),
        "accept" => drop(std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap()),
        // SAFETY: kill on the helper's pid.
        "pause" | "busy" => assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0),
        _ => {}
    }
    let r = p.result();
    let f: Vec<&str> = r.split(' ').collect();
    match mode {
        "epoll" => assert_eq!(&f[1..4], ["epoll_wait", "1", "0"], "{r}"),
        "read" | "threads" => assert_eq!(&f[1..4], ["read", "1", "0"], "{r}"),
        "accept" => assert!(f[2].parse::<i32>().unwrap() >= 0 && f[3] == "0", "{r}"),
        // The EINTR is the handler's: pause() returns only after a handled signal.
        "pause" => assert_eq!(&f[1..5], ["pause", "-1", "4", "1"], "{r}"),
        "busy" => assert_eq!(f[3], f[4], "the loop's hash differs from its recomputation: {r}"),
        "nanosleep" => {
            assert_eq!(&f[1..3], ["nanosleep", "0"], "{r}");
            let ms: u128 = f[4].parse().unwrap();
            // A sleep restarted from scratch at the reap would end 5000 ms
            // after it, `waited` (at least 1000 ms) or more after the start.
            let restarted = 5000 + waited.as_millis();
            assert!(
                (5000..restarted).contains(&ms),
                "slept {ms} ms for 5000 (the rest of the sleep, not a new one, would end before {restarted})"
            );
        }
        _ => unreachable!(),
    }
    assert_eq!(status_line(pid, "SigBlk"), mask);
}

#[test]
fn epoll_wait_1() {
    carries_on("epoll", 1);
}

#[test]
fn epoll_wait_500() {
    carries_on("epoll", 500);
}

#[test]
fn nanosleep_1() {
    carries_on("nanosleep", 1);
}

#[test]
fn nanosleep_500() {
    carries_on("nanosleep", 500);
}

#[test]
fn read_1() {
    carries_on("read", 1);
}

#[test]
fn read_500() {
    carries_on("read", 500);
}

#[test]
fn accept_1() {
    carries_on("accept", 1);
}

#[test]
fn accept_500() {
    carries_on("accept", 500);
}

#[test]
fn pause_1() {
    carries_on("pause", 1);
}

#[test]
fn pause_500() {
    carries_on("pause", 500);
}

#[test]
fn busy_loop_1() {
    carries_on("busy", 1);
}

#[test]
fn busy_loop_500() {
    carries_on("busy", 500);
}

#[test]
fn children_of_another_thread() {
    carries_on("threads", 500);
}

/// Queues SIGRTMIN+1 with value `v` to `pid`, from this process.
fn sigqueue(pid: i32, v: i32) {
    // x86_64 and aarch64 siginfo: signo, errno, code, padding, then pid, uid, value.
    let mut info = [0i32; 32];
    info[0] = libc::SIGRTMIN() + 1;
    info[2] = libc::SI_QUEUE;
    info[4] = std::process::id() as i32;
    // SAFETY: getuid has no preconditions.
    info[5] = unsafe { libc::getuid() } as i32;
    info[6] = v;
    // SAFETY: rt_sigqueueinfo reads a 128-byte siginfo from a live buffer.
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid, info[0], info.as_ptr()) };
    assert_eq!(rc, 0, "rt_sigqueueinfo: {}", std::io::Error::last_os_error());
}

#[test]
fn signals_during_the_reap_are_delivered_with_their_siginfo() {
    let mut p = Parent::start("read", 500);
    let pid = p.pid;
    wait_state(pid, "S");
    let mut z = Command::new(zreap())
        .args(["reap", "--pid", &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Queued real-time signals, before, during and after the reap.
    let sent = 200;
    for v in 1..=sent {
        sigqueue(pid, v);
        std::thread::sleep(Duration::from_micros(200));
    }
    let deadline = Instant::now() + LIMIT;
    while z.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "zreap reap did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = z.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    check_reaped(&p, &stdout);
    println!("{}", stdout.lines().filter(|l| !l.starts_with("reaped ")).collect::<Vec<_>>().join("\n"));
    p.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    let r = p.result();
    // Every signal arrived once, with the value and sender it was sent with;
    // the read restarted after each handler (SA_RESTART).
    assert_eq!(r, format!("result read 1 0 rt {sent} {}", sent * (sent + 1) / 2));
}

#[test]
fn a_parent_that_dies_during_the_reap() {
    let p = Parent::start("dies", 500);
    wait_state(p.pid, "S");
    let started = Instant::now();
    let out = reap(&["--pid", &p.pid.to_string()]);
    let (stdout, stderr) = text(&out);
    assert!(started.elapsed() < Duration::from_secs(10), "zreap took {:?}", started.elapsed());
    assert!(stderr.contains(&format!("{} (reap_parent) exited while zreap worked on it", p.pid)), "{stdout}\n{stderr}");
    // The rest went to this process (the subreaper), which has not reaped them yet.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.lines().filter(|l| l.starts_with("reaped ")).count() < 500, "{stdout}");
}

#[test]
fn only_the_zombies_named() {
    let p = Parent::start("read", 3);
    let pid = p.pid.to_string();
    let (kid, status) = p.kids[1];
    let out = reap(&["--pid", &pid, &kid.to_string()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.starts_with(&format!("reaped {kid} (reap_parent): {}; ", described(status))), "{stdout}");
    assert_eq!(zombies_of(p.pid), vec![p.kids[0].0, p.kids[2].0]);
    // Not a child of the parent: left alone, exit 1.
    let me = std::process::id().to_string();
    let out = reap(&["--pid", &pid, &me]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not a zombie child of"), "{:?}", text(&out));
    assert_eq!(zombies_of(p.pid).len(), 2);
}

#[test]
fn dry_run_touches_nothing() {
    let h = Helper::start("never_waits");
    let pid = h.ready_pid();
    let out = reap(&["--pid", &pid.to_string(), "--dry-run"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "the zombies remain: {stdout}");
    assert!(stdout.starts_with(&format!("would stop {pid} (never_waits)")), "{stdout}");
    assert!(stdout.contains("exited with status 0"), "{stdout}");
    assert_eq!(zombies_of(pid).len(), 3);
}

/// Runs `zreap reap --pid PID` and checks the refusal: exit 1, `why` on
/// stderr, the zombies untouched.
fn refused(pid: i32, why: &str) {
    let before = zombies_of(pid);
    let out = reap(&["--pid", &pid.to_string()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("refused: ") && stderr.contains(why), "wanted {why:?}:\n{stderr}");
    assert!(stderr.contains("(--force overrides)"), "{stderr}");
    assert_eq!(zombies_of(pid), before);
}

#[test]
fn refuses_a_parent_in_state_d() {
    let p = Parent::start("dstate", 3);
    wait_state(p.pid, "D");
    refused(p.pid, "is in state D (uninterruptible sleep)");
}

#[test]
fn refuses_a_traced_parent() {
    let h = Helper::start("traced");
    let pid = h.ready_pid();
    wait_state(pid, "t");
    refused(pid, "(traced) is traced by ");
}

#[test]
fn refuses_pid_1_and_itself() {
    let out = reap(&["--pid", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("refused: PID 1 is init"), "{:?}", text(&out));
    let sh = format!("exec {} reap --pid $$", zreap().display());
    let out = run_with_deadline(Command::new("sh").args(["-c", &sh]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is zreap itself"), "{:?}", text(&out));
}

#[test]
fn refuses_a_parent_that_collects_its_children() {
    let h = Helper::start("handler_noreap");
    refused(h.ready_pid(), "collects its children itself ([handler-leaks]: ");
    let s = Helper::start("signalfd_unread");
    refused(s.ready_pid(), "collects its children itself ([signalfd-not-read]: ");
    // --force reaps them all the same.
    let out = reap(&["--pid", &h.ready_pid().to_string(), "--force"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(zombies_of(h.ready_pid()), Vec::<i32>::new());
}

#[test]
fn a_stuck_zombie_is_reported_not_attempted() {
    let h = Helper::start("zombie_dthread");
    let pid = h.ready_pid();
    wait_zombies(pid, 1);
    // Its second thread is in vfork, in state D.
    let z = zombies_of(pid)[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    let in_d = || {
        std::fs::read_dir(format!("/proc/{z}/task"))
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .any(|st| st.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('D')))
    };
    while !in_d() {
        assert!(Instant::now() < deadline, "no thread of {z} in state D");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = reap(&["--pid", &pid.to_string()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("is not reapable yet, not attempted: a thread of it has not exited"), "{stderr}");
    assert!(stderr.contains("state D"), "{stderr}");
    assert_eq!(zombies_of(pid).len(), 1);
}

#[test]
fn permission_denied_says_why() {
    let h = Helper::start("never_waits");
    let pid = h.ready_pid();
    let mut cmd = Command::new(zreap());
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    let out = run_with_deadline(cmd.args(["reap", "--pid", &pid.to_string()]), LIMIT);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "ptrace(PTRACE_SEIZE, {pid}): permission denied: zreap runs as uid 65534 without CAP_SYS_PTRACE, {pid} \
             as uid 0; "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("ptrace_scope"), "{stderr}");
    assert_eq!(zombies_of(pid).len(), 3);
}

#[test]
fn usage_errors_exit_2() {
    for args in [&[][..], &["--pid", "0"], &["--pid", "x"], &["--pid", "1", "-3"], &["--pid", "2147483647"]] {
        let out = reap(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}", text(&out));
    }
}

/// The registers of a stopped `pid`, read as its tracer (and left stopped).
fn registers_of_stopped(pid: i32) -> Vec<i64> {
    // SAFETY: PTRACE_SEIZE with integer arguments.
    assert_eq!(unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) }, 0);
    // SAFETY: PTRACE_INTERRUPT with integer arguments.
    assert_eq!(unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0usize, 0usize) }, 0);
    let mut status = 0;
    // SAFETY: waitpid on one pid with a valid status pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, libc::__WALL) }, pid);
    assert!(libc::WIFSTOPPED(status) && status >> 16 == libc::PTRACE_EVENT_STOP, "{status:#x}");
    let regs = (0..std::mem::size_of::<libc::user_regs_struct>() / 8)
        .map(|i| {
            // SAFETY: PTRACE_PEEKUSER at an offset inside user_regs_struct.
            unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, pid, i * 8, 0usize) }
        })
        .collect();
    // SAFETY: PTRACE_DETACH with integer arguments.
    assert_eq!(unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) }, 0);
    regs
}

#[test]
fn stopped_parent_forced_keeps_its_registers_and_stays_stopped() {
    let p = Parent::start("pause", 500);
    let pid = p.pid;
    wait_state(pid, "S");
    // SAFETY: kill on the helper's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    wait_state(pid, "T");
    let mask = status_line(pid, "SigBlk");
    let before = registers_of_stopped(pid);
    wait_state(pid, "T");
    refused(pid, "is stopped (state T): kill -CONT");

    let out = reap(&["--pid", &pid.to_string(), "--force"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    check_reaped(&p, &stdout);
    assert_eq!(zombies_of(pid), Vec::<i32>::new());
    assert_eq!(state_ppid(pid).unwrap().0, 'T', "still stopped");
    assert_eq!(registers_of_stopped(pid), before, "every register as before");
    assert_eq!(status_line(pid, "SigBlk"), mask);

    // SAFETY: kill on the helper's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    p.assert_silent(Duration::from_millis(300));
    // SAFETY: kill on the helper's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    assert_eq!(p.result(), "result pause -1 4 1 rt 0 0");
}

/// A running `zreap reap --pid PID`, its output read as it comes; dropping
/// it kills and reaps it.
struct Reaping {
    child: Child,
    out: Option<std::thread::JoinHandle<(Vec<u8>, Vec<u8>)>>,
}

impl Reaping {
    fn start(pid: i32) -> Reaping {
        let mut child = Command::new(zreap())
            .args(["reap", "--pid", &pid.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out = std::thread::spawn(move || {
            use std::io::Read;
            let err = std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = stderr.read_to_end(&mut v);
                v
            });
            let mut v = Vec::new();
            let _ = stdout.read_to_end(&mut v);
            (v, err.join().unwrap())
        });
        Reaping { child, out: Some(out) }
    }

    /// Waits until zreap has reaped `k` or more of `p`'s zombies; fails if
    /// it had none left to reap then (or exited), as the signal sent next
    /// would no longer come while the parent runs injected calls.
    fn reaped(&mut self, p: &Parent, k: usize) -> usize {
        let deadline = Instant::now() + LIMIT;
        loop {
            let gone = p.kids.iter().filter(|(kid, _)| std::fs::metadata(format!("/proc/{kid}")).is_err()).count();
            assert!(gone < p.kids.len(), "zreap reaped every zombie before the test could signal");
            if gone >= k {
                return gone;
            }
            assert!(self.child.try_wait().unwrap().is_none(), "zreap exited early");
            assert!(Instant::now() < deadline, "zreap reaped {gone} zombies, not {k}");
        }
    }

    fn output(mut self) -> Output {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "zreap reap did not finish");
            std::thread::sleep(Duration::from_millis(10));
        };
        let (stdout, stderr) = self.out.take().unwrap().join().unwrap();
        Output { status, stdout, stderr }
    }
}

impl Drop for Reaping {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
    }
}

/// Sends `sig` to `pid` while zreap runs its injected calls, and waits until
/// two more zombies are gone: the parent has stopped for the signal since,
/// and zreap holds it back.
fn send_held(z: &mut Reaping, p: &Parent, sig: i32) {
    let before = z.reaped(p, 1);
    // SAFETY: kill on the helper's pid.
    assert_eq!(unsafe { libc::kill(p.pid, sig) }, 0);
    z.reaped(p, before + 2);
}

#[test]
fn two_held_signals_of_one_number_are_both_delivered() {
    let p = Parent::start("pause", 2000);
    wait_state(p.pid, "S");
    let mut z = Reaping::start(p.pid);
    send_held(&mut z, &p, libc::SIGUSR1);
    send_held(&mut z, &p, libc::SIGUSR1);
    let out = z.output();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stderr, "", "{stdout}");
    assert!(stdout.contains(&format!("2 signal(s) came while {} ran the injected calls", p.pid)), "{stdout}");
    check_reaped(&p, &stdout);
    // Both ran the handler; pause() returned for them.
    assert_eq!(p.result(), "result pause -1 4 2 rt 0 0");
}

#[test]
fn an_ignored_signal_held_back_does_not_interrupt_epoll_wait() {
    let mut p = Parent::start("epoll", 2000);
    wait_state(p.pid, "S");
    let mut z = Reaping::start(p.pid);
    // SIGWINCH: no handler, ignored by default.
    send_held(&mut z, &p, libc::SIGWINCH);
    let out = z.output();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("1 signal(s) came while {} ran the injected calls", p.pid)), "{stdout}");
    p.assert_silent(Duration::from_millis(300));
    p.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    assert_eq!(p.result(), "result epoll_wait 1 0 rt 0 0");
}

#[test]
fn a_signal_that_ends_zreap_mid_reap_waits_until_the_parent_is_restored() {
    let mut p = Parent::start("read", 2000);
    wait_state(p.pid, "S");
    let mut z = Reaping::start(p.pid);
    z.reaped(&p, 1);
    // SAFETY: kill on zreap's pid.
    assert_eq!(unsafe { libc::kill(z.child.id() as i32, libc::SIGUSR1) }, 0);
    let out = z.output();
    let (stdout, stderr) = text(&out);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGUSR1), "{stdout}\n{stderr}");
    // It finished and said so first.
    check_reaped(&p, &stdout);
    assert_eq!(zombies_of(p.pid), Vec::<i32>::new());
    assert_eq!(status_line(p.pid, "TracerPid"), "TracerPid:\t0");
    // The parent's read() goes on as before.
    p.assert_silent(Duration::from_millis(300));
    p.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    assert_eq!(p.result(), "result read 1 0 rt 0 0");
}
