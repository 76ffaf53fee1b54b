//! Issue 13's rows, zreap beside the libraries a user would pick instead:
//! start cost against live tracked children (section `live-scale`),
//! exit-to-delivery latency (`latency`) and system calls per exit
//! (`syscalls`). The Rust rows run the `live` worker (`live.rs`); libuv and
//! GLib run C workers (`bench/peers/`) compiled here with pkg-config's flags,
//! skipped with a note when the `-dev` package is missing. Every child these
//! rows start or time is `bench/peers/tiny.c`, a static program without libc.

use crate::{median, median_f64, num, plot, s, samples_of, Bench, Row, Target, Val};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Issue 13: the start of the 5,000th (and 10,000th) live tracked child costs
/// at most this much times the start with 10 live children.
const FLAT_START: f64 = 1.10;

/// Issue 13, part 2: exit-to-delivery of a tracked child (OWN) at most this
/// much times `waitpid(pid)`, at few and at many live children.
const LATENCY_BOUND: f64 = 1.10;

/// Issue 13, part 3: with many live children, exit-to-delivery in the
/// all-children scope at most the textbook SIGCHLD handler's.
const HANDLER_BOUND: f64 = 1.0;
/// The live children from which [`HANDLER_BOUND`] applies (the 5,000).
const HANDLER_BOUND_FROM: usize = 5_000;

/// Issue 13, part 2: system calls per exit on the common paths (a blocking
/// wait for a tracked child; reap_all once the reap fd is readable).
const SYSCALLS_PER_EXIT: f64 = 4.0;
/// The common paths [`SYSCALLS_PER_EXIT`] applies to.
const COMMON_PATHS: [&str; 2] = ["zspawn-own", "zfd-own"];

/// For the other zreap rows: the count does not grow with the live children.
const FLAT_SYSCALLS: f64 = 1.10;

/// The start-cost libraries: (worker, label, is zreap).
const START_LIBS: [(&str, &str, bool); 10] = [
    ("zspawn-own", "zreap::spawn, install(OWN)", true),
    ("zspawn-all", "zreap::spawn, install(empty)", true),
    ("zfork-own", "zreap::fork, install(OWN)", true),
    ("zfork-all", "zreap::fork, install(empty)", true),
    ("posix_spawn", "raw posix_spawn (untracked)", false),
    ("fork", "raw fork() (untracked)", false),
    ("std", "std::process::Command", false),
    ("tokio", "tokio::process::Command", false),
    ("uv", "libuv uv_spawn", false),
    ("glib", "GLib g_spawn_async + g_child_watch_add", false),
];

/// The user the timed workers run as when the bench runs as root: one that
/// cannot change its credentials, as most programs.
const UNPRIVILEGED: u32 = 65534;

/// The host's own starts beside N live children, tracked or not: (worker
/// with tracked children, worker with untracked ones, what the host does).
const HOST_PAIRS: [(&str, &str, &str); 3] = [
    ("host-tracked", "posix_spawn", "posix_spawn + waitpid"),
    ("host-tracked-fork", "host-fork", "fork() + _exit + waitpid"),
    ("host-tracked-fork-thread", "host-fork-thread", "fork() + _exit + waitpid with a thread of its own"),
];

/// The exit-to-delivery rows: (worker, label, baseline worker).
const LATENCY_LIBS: [(&str, &str, &str); 8] = [
    ("posix_spawn", "waitpid(pid), posix_spawn child", "posix_spawn"),
    ("zspawn-own", "zreap::wait(pid), install(OWN)", "posix_spawn"),
    ("zfd-own", "poll(reap_fd) + reap_all, install(OWN)", "posix_spawn"),
    ("sigchld", "textbook SA_SIGINFO handler, waitpid(-1, WNOHANG) loop", "sigchld"),
    ("zspawn-all", "zreap::wait(pid), install(empty)", "sigchld"),
    ("uv", "libuv exit callback", "posix_spawn"),
    ("glib", "GLib child watch", "posix_spawn"),
    ("tokio", "tokio Child::wait", "posix_spawn"),
];

/// The system-call rows: (worker, label).
const SYSCALL_LIBS: [(&str, &str); 8] = [
    ("posix_spawn", "waitpid(pid) that blocks"),
    ("zspawn-own", "zreap::wait(pid) that blocks, install(OWN)"),
    ("zfd-own", "poll(reap_fd) + reap_all, install(OWN)"),
    ("zspawn-all", "zreap::wait(pid) that blocks, install(empty)"),
    ("sigchld", "textbook SA_SIGINFO handler + self-pipe"),
    ("uv", "libuv exit callback"),
    ("glib", "GLib child watch"),
    ("tokio", "tokio Child::wait"),
];

const C_PEERS: [(&str, &str, &str); 2] =
    [("uv", "libuv", include_str!("../peers/uv.c")), ("glib", "glib-2.0", include_str!("../peers/glib.c"))];

pub const METHOD_TEXT: &str = "\
7. **Start cost with N live children.** Workers in `bench/src/live.rs` (Rust rows) and
   `bench/peers/*.c` (libuv, GLib; compiled at bench time with `pkg-config --cflags --libs`)
   share one driver: N live children of the library under test (`tiny-block`, a static
   program without libc blocked in `read()` on a pipe) are started first; then each sample
   times one more start of `tiny-block`, on a pipe of its own: the library's spawn call only
   (for `zreap::fork`, the fork); the pipe is closed and the exit waited for untimed, so no
   exit lands in the timed start. The host rows time `posix_spawn` + `waitpid` of `tiny`
   (the same program, exiting at once), and `fork()` + `_exit` + `waitpid`, by code that does
   not use zreap, while N tracked `zreap::spawn` children are alive (under `install(OWN)`) or
   N untracked `posix_spawn` children. Each (library, N) runs in a process of its own, and
   the ratios are measured in pairs: the library at N beside the same library at N=10, and
   the host beside tracked children beside the host beside as many untracked ones. Both
   workers of a pair are alive at once and take turns, a block of 20 timed starts (after 2
   untimed) each, the first to go alternating, 10 blocks a run; each block gives one ratio,
   its median against the median of the other side's block beside it, and a row's ratio is
   the median of those over 3 runs with fresh workers (the pairs' order rotating from run
   to run). The time shown is the median of every sample. Where two workers' children
   would not fit under pid_max and RLIMIT_NPROC, a pair's sides run one after the other.
   The raw `fork()` row forks children that block without exec, as `zreap::fork`'s do. The
   page-fault rows are the worker's minor faults (`getrusage(RUSAGE_SELF)`, every thread)
   over the measured iterations, start and wait alike, per iteration, median of the runs:
   unlike time, they repeat from run to run on a shared machine. Run by root, the workers of
   sections 7 and 8 run as uid/gid 65534, a process that cannot change its credentials,
   where zreap's keeper is a bare clone that glibc does not count (as root it is a pthread,
   and a single-threaded host's own `fork()` pays glibc's multi-threaded path).
8. **Exit-to-delivery latency.** Same driver: the measured child is `tiny-block` on a pipe
   of its own; once it sleeps in `read()` (state S in /proc), the time from closing the
   pipe's write end to the waiter holding the exit status. This includes the child's wake-up
   and `exit`, alike for every row. Each row is paired with its baseline at the same N
   (`waitpid(pid)` or the textbook handler) as in section 7, in blocks of 8 exits.
9. **System calls per exit.** The latency driver under `strace -f -qq -o FILE`, with an
   `access()` marker before the release and after the delivery; the system calls of the
   worker's own threads between the markers (a call split by `<unfinished ...>` counted
   once), minus the `close()` that releases the child, divided by the exits.
";

pub struct Params {
    levels: Vec<usize>,
    /// Timed iterations per block (start and cycle modes).
    iters: usize,
    /// Untimed iterations before each block.
    warmup: usize,
    /// Blocks per worker in one pair's run.
    blocks: usize,
    /// Runs of each pair, each with fresh workers.
    rounds: usize,
    lat_levels: Vec<usize>,
    /// Timed iterations per block in the latency rows.
    lat_iters: usize,
    /// Children (besides the measured ones) two workers may hold at once:
    /// a pair whose two sides would exceed it runs one side after the other.
    room: usize,
    sys_levels: Vec<usize>,
    sys_exits: usize,
}

impl Params {
    /// The levels are capped by what pid_max, RLIMIT_NPROC (`storm_limit`)
    /// and the hard RLIMIT_NOFILE (a pidfd per child, for zreap and tokio)
    /// allow, with room for the measured child and a margin.
    pub fn new(quick: bool, notes: &mut Vec<String>) -> Params {
        let mut p = if quick {
            Params {
                levels: vec![10, 50],
                iters: 5,
                warmup: 1,
                blocks: 2,
                rounds: 1,
                lat_levels: vec![10, 50],
                lat_iters: 3,
                room: 0,
                sys_levels: vec![10, 50],
                sys_exits: 3,
            }
        } else {
            Params {
                levels: vec![10, 1000, 5000, 10_000],
                iters: 20,
                warmup: 2,
                blocks: 10,
                rounds: 3,
                lat_levels: vec![10, 5000],
                lat_iters: 8,
                room: 0,
                sys_levels: vec![10, 1000],
                sys_exits: 20,
            }
        };
        let want = p.levels.iter().chain(&p.lat_levels).max().copied().unwrap_or(0) + 100;
        // SAFETY: rl is a valid out-pointer.
        let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let nofile = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } {
            0 if rl.rlim_max != libc::RLIM_INFINITY => rl.rlim_max as usize,
            _ => usize::MAX,
        };
        p.room = crate::storm_limit(usize::MAX, &mut Vec::new());
        let cap = p.room.min(want).min(nofile.saturating_sub(200));
        let fits = |n: &usize| n + 100 <= cap;
        if !p.levels.iter().all(fits) || !p.lat_levels.iter().all(fits) {
            notes.push(format!(
                "live-children rows above {} skipped: pid_max, RLIMIT_NPROC or RLIMIT_NOFILE leave room for {cap} children",
                cap.saturating_sub(100)
            ));
        }
        p.levels.retain(fits);
        p.lat_levels.retain(fits);
        p.sys_levels.retain(fits);
        p
    }
}

struct Tools {
    tiny: PathBuf,
    tiny_block: PathBuf,
    /// The C peers that built: worker name to binary.
    peers: HashMap<&'static str, PathBuf>,
}

/// State of the issue 13 sections, kept in the [`Bench`].
pub struct Scale {
    p: Params,
    tools: Option<Result<Tools, String>>,
    /// Start cost (µs) against live children, per library: the second plot.
    pub plot: Vec<plot::Series>,
    /// One paragraph per goal of issue 13, for the document.
    pub goals: Vec<String>,
}

impl Scale {
    pub fn new(p: Params) -> Scale {
        Scale { p, tools: None, plot: Vec::new(), goals: Vec::new() }
    }

    /// The "Goals" section of benchmarks.md (empty when no section ran).
    pub fn goals_md(&self) -> String {
        let mut d = String::new();
        if !self.goals.is_empty() {
            let _ = writeln!(d, "\n## Goals of issue 13\n");
            for g in &self.goals {
                let _ = writeln!(d, "- {g}");
            }
        }
        d
    }
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

fn compile(args: &[&str], what: &str) -> Result<(), String> {
    let out = Command::new(cc()).args(args).output().map_err(|e| format!("{}: {e}", cc()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {} failed: {}", cc(), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Builds `tiny`, `tiny-block` and the C peers in `dir`; a peer whose
/// pkg-config package is missing is left out with a note.
fn build_tools(dir: &Path, notes: &mut Vec<String>) -> Result<Tools, String> {
    let write = |name: &str, text: &str| -> Result<String, String> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
        Ok(p.to_string_lossy().into_owned())
    };
    let src = write("tiny.c", include_str!("../peers/tiny.c"))?;
    let tiny = dir.join("tiny");
    let tiny_block = dir.join("tiny-block");
    let flags = ["-nostdlib", "-static", "-O2", "-o"];
    compile(&[&flags[..], &[tiny.to_str().unwrap_or_default(), &src]].concat(), "tiny")?;
    compile(&[&flags[..], &[tiny_block.to_str().unwrap_or_default(), "-DBLOCK", &src]].concat(), "tiny-block")?;
    write("peer.h", include_str!("../peers/peer.h"))?;
    let mut peers = HashMap::new();
    for (name, pkg, text) in C_PEERS {
        let flags = match Command::new("pkg-config").args(["--cflags", "--libs", pkg]).output() {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => {
                notes.push(format!(
                    "{name} peer skipped: pkg-config {pkg}: {} (scripts/setup.sh installs it)",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                continue;
            }
            Err(e) => {
                notes.push(format!("{name} peer skipped: pkg-config: {e}"));
                continue;
            }
        };
        let src = write(&format!("{name}.c"), text)?;
        let bin = dir.join(format!("peer-{name}"));
        let mut args = vec!["-O2", "-o", bin.to_str().unwrap_or_default(), &src];
        args.extend(flags.split_whitespace());
        match compile(&args, name) {
            Ok(()) => {
                peers.insert(name, bin);
            }
            Err(e) => notes.push(format!("{name} peer skipped: {e}")),
        }
    }
    let version = |pkg: &str| {
        Command::new("pkg-config")
            .args(["--modversion", pkg])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let found: Vec<String> = C_PEERS
        .iter()
        .filter(|(name, ..)| peers.contains_key(name))
        .map(|(_, pkg, _)| format!("{pkg} {}", version(pkg).unwrap_or_default()))
        .collect();
    if !found.is_empty() {
        notes.push(format!("C peers built against {}; tokio 1.54 (Cargo.lock)", found.join(", ")));
    }
    Ok(Tools { tiny, tiny_block, peers })
}

/// Runs `cmd` with a deadline (then kills it: its blocked children see the
/// pipe's write end close, exit and are reaped by whoever adopts them), and
/// returns its key=value output.
fn run_with_deadline(mut cmd: Command, limit: Duration, what: &str) -> Result<HashMap<String, String>, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let pipe_reader = |mut p: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = p.read_to_string(&mut s);
            s
        })
    };
    let out = pipe_reader(Box::new(child.stdout.take().expect("piped")));
    let err = pipe_reader(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(st) if st.success() => {}
        Some(st) => return Err(format!("{what} failed ({st}): {}", err.trim())),
        None => return Err(format!("{what} did not finish within {limit:?}: {}", err.trim())),
    }
    let mut kv = HashMap::new();
    for tok in out.split_whitespace() {
        if let Some((k, v)) = tok.split_once('=') {
            kv.insert(k.to_string(), v.to_string());
        }
    }
    Ok(kv)
}

/// System calls per exit from an `strace -f -o` file: the lines of `tids`
/// between the markers, less the releasing close(); with a per-name tally.
fn count_syscalls(trace: &str, tids: &[&str]) -> (usize, usize, HashMap<String, usize>) {
    let (mut calls, mut exits, mut inside) = (0usize, 0usize, false);
    let mut tally: HashMap<String, usize> = HashMap::new();
    for line in trace.lines() {
        let Some((tid, rest)) = line.split_once(' ') else { continue };
        if !tids.contains(&tid) {
            continue;
        }
        let rest = rest.trim_start();
        if rest.contains("/zreap-bench-mark-begin") {
            inside = true;
        } else if rest.contains("/zreap-bench-mark-end") {
            inside = false;
            exits += 1;
        } else if inside && !rest.starts_with("<...") && !rest.starts_with("---") && !rest.starts_with("+++") {
            let name = rest.split('(').next().unwrap_or(rest).to_string();
            calls += 1;
            *tally.entry(name).or_default() += 1;
        }
    }
    // The close() of the pipe's write end that releases the child.
    calls = calls.saturating_sub(exits);
    if let Some(c) = tally.get_mut("close") {
        *c = c.saturating_sub(exits);
    }
    tally.retain(|_, c| *c > 0);
    (calls, exits, tally)
}

fn fmt_n(n: usize) -> String {
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

/// A worker: (library, mode, N live children).
type Slot = (&'static str, &'static str, usize);

/// What samples, fds and faults are pooled under: (library, N), the library
/// being `host-untracked` for a cycle run of posix_spawn.
fn slot_key((lib, mode, n): Slot) -> Key {
    (if mode == "cycle" { cycle_key(lib) } else { lib }, n)
}

/// A pooling key: (library, N).
type Key = (&'static str, usize);

type Samples = HashMap<Key, Vec<u64>>;
/// Open fds of the worker once its N live children were made, by (key, N).
type Fds = HashMap<Key, u64>;
/// Page faults of the worker (all its threads) per 1,000 measured
/// iterations, one value per run, by (key, N).
type Faults = HashMap<Key, Vec<u64>>;

/// What [`Bench::paired_rounds`] measured: pooled like [`Samples`], and the
/// ratios of the case's blocks to the baseline's, by (case, baseline).
#[derive(Default)]
struct Paired {
    samples: Samples,
    fds: Fds,
    faults: Faults,
    ratios: HashMap<(Key, Key), Vec<f64>>,
}

impl Paired {
    /// The median of `case`'s block ratios against `base`.
    fn ratio(&self, case: Key, base: Key) -> Option<f64> {
        median_f64(self.ratios.get(&(case, base))?)
    }
}

/// A worker that runs blocks of iterations on demand (see
/// [`crate::live::DRIVEN`]); killed when dropped unfinished.
struct Driven {
    child: Child,
    slot: Slot,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    limit: Duration,
}

impl Driven {
    fn start(mut cmd: Command, slot: Slot, limit: Duration) -> Result<Driven, String> {
        cmd.env(crate::live::DRIVEN, "1").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", what(slot)))?;
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let stdin = child.stdin.take();
        Ok(Driven { child, slot, stdin, lines, stderr: Some(stderr), limit })
    }

    /// Why the worker stopped answering: its exit status and stderr.
    fn failure(&mut self, what_went_wrong: &str) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().map(|st| st.to_string()).unwrap_or_default();
        let err = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        format!("{} {what_went_wrong} ({status}): {}", what(self.slot), err.trim())
    }

    /// The key=value lines up to and including `last`, within the limit.
    fn read_until(&mut self, last: &str) -> Result<HashMap<String, String>, String> {
        let deadline = Instant::now() + self.limit;
        let mut kv = HashMap::new();
        loop {
            let line = match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("did not answer within {:?}", self.limit)))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) if last.is_empty() => return Ok(kv),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(self.failure("stopped")),
            };
            if let Some((k, v)) = line.split_once('=') {
                let done = k == last;
                kv.insert(k.to_string(), v.to_string());
                if done {
                    return Ok(kv);
                }
            }
        }
    }

    /// Runs one block into `out`; returns its median.
    fn block(&mut self, iters: usize, out: &mut Paired) -> Result<f64, String> {
        let sent = self.stdin.as_mut().expect("open until finish").write_all(b"\n");
        if let Err(e) = sent {
            return Err(self.failure(&format!("stdin: {e}")));
        }
        let kv = self.read_until("samples")?;
        let key = slot_key(self.slot);
        let mut samples = samples_of(&kv);
        if samples.len() != iters {
            return Err(self.failure(&format!("gave {} samples, not {iters}", samples.len())));
        }
        if kv.contains_key("fds") {
            out.fds.insert(key, num(&kv, "fds"));
        }
        if kv.contains_key("faults") {
            out.faults.entry(key).or_default().push(num(&kv, "faults") * 1000 / iters.max(1) as u64);
        }
        out.samples.entry(key).or_default().extend(&samples);
        Ok(median(&mut samples).unwrap_or(0.0))
    }

    /// Closes its stdin: the worker waits for its live children and exits.
    fn finish(mut self) -> Result<(), String> {
        self.stdin = None;
        let kv = self.read_until("")?;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(self.failure("failed"));
        }
        match num(&kv, "zombies") {
            0 => Ok(()),
            z => Err(format!("{}: {z} zombies left", what(self.slot))),
        }
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        // A worker that already exited was waited for: kill() then does nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn what((lib, mode, n): Slot) -> String {
    format!("{lib} {mode} N={n}")
}

impl Bench {
    /// The tiny children and the C peers, built once per run.
    fn tools(&mut self, tmp: &Path) -> Result<&Tools, String> {
        if self.scale.tools.is_none() {
            let built = build_tools(tmp, &mut self.notes);
            self.scale.tools = Some(built);
        }
        match self.scale.tools.as_ref().expect("set above") {
            Ok(t) => Ok(t),
            Err(e) => Err(e.clone()),
        }
    }

    /// The command that runs `lib` in `mode` with `n` live children, `iters`
    /// timed iterations (per block), and its time limit; None when the peer
    /// was not built. `strace`: the file to trace it into. `pin`: the CPU the
    /// worker and its children are bound to.
    fn live_command(
        &mut self,
        tmp: &Path,
        (lib, mode, n): Slot,
        iters: usize,
        strace: Option<&Path>,
        pin: Option<usize>,
    ) -> Option<Result<(Command, Duration), String>> {
        let warmup = if mode == "syscalls" { 1 } else { self.scale.p.warmup };
        let tools = match self.tools(tmp) {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let mut args: Vec<String> = Vec::new();
        let prog = match tools.peers.get(lib) {
            Some(bin) => bin.to_string_lossy().into_owned(),
            None if C_PEERS.iter().any(|(name, ..)| *name == lib) => return None,
            None => {
                args.extend([s("__worker"), s("live"), s(lib)]);
                // Under strace /proc/self/exe would be strace's own binary.
                match strace {
                    Some(_) => std::fs::read_link("/proc/self/exe")
                        .map_or_else(|_| "/proc/self/exe".into(), |p| p.to_string_lossy().into_owned()),
                    None => "/proc/self/exe".to_string(),
                }
            }
        };
        args.extend([s(mode), s(n), s(iters), s(warmup)]);
        args.extend([&tools.tiny, &tools.tiny_block].map(|p| p.to_string_lossy().into_owned()));
        let mut cmd = match strace {
            Some(file) => {
                let mut c = Command::new("strace");
                c.args(["-f", "-qq", "-o"]).arg(file).arg("--").arg(&prog);
                c
            }
            None => {
                let mut c = Command::new(&prog);
                // SAFETY: geteuid cannot fail.
                if unsafe { libc::geteuid() } == 0 {
                    use std::os::unix::process::CommandExt as _;
                    c.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
                }
                c
            }
        };
        cmd.args(&args);
        if let Some(cpu) = pin {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: an all-zero cpu_set_t is an empty set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: first_cpu gave a CPU below CPU_SETSIZE.
            unsafe { libc::CPU_SET(cpu, &mut set) };
            // SAFETY: between fork and exec the closure makes one raw system
            // call on a set built before the fork: async-signal-safe.
            unsafe {
                cmd.pre_exec(move || match libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        Some(Ok((cmd, Duration::from_secs(120) + Duration::from_millis(20) * n as u32)))
    }

    /// One run of a worker to its end (for strace).
    fn live_worker(
        &mut self,
        tmp: &Path,
        slot: Slot,
        iters: usize,
        strace: Option<&Path>,
    ) -> Option<Result<HashMap<String, String>, String>> {
        Some(
            self.live_command(tmp, slot, iters, strace, None)?
                .and_then(|(cmd, limit)| run_with_deadline(cmd, limit, &what(slot))),
        )
    }

    /// Runs every pair (baseline, case) `rounds` times with fresh workers,
    /// the pairs' order rotated and reversed from round to round. In a run,
    /// both workers are alive at once and take turns, a block of iterations
    /// each, the first to go alternating; each block of the case gives one
    /// ratio, its median against the baseline's block beside it. A job that
    /// failed once is dropped (error); a peer that is not built is left out
    /// (noted when building). `pin`: the CPU every worker is bound to.
    fn paired_rounds(&mut self, tmp: &Path, pairs: &[(Slot, Slot)], iters: usize, pin: Option<usize>) -> Paired {
        let mut out = Paired::default();
        let mut failed: Vec<(&str, usize)> = Vec::new();
        let len = pairs.len();
        for round in 0..self.scale.p.rounds {
            for k in 0..len {
                let i = (k + round) % len;
                let pair = pairs[if round % 2 == 1 { len - 1 - i } else { i }];
                let (a, b) = (slot_key(pair.0), slot_key(pair.1));
                if failed.contains(&a) || failed.contains(&b) {
                    continue;
                }
                if let Err((slot, e)) = self.run_pair(tmp, pair, iters, pin, &mut out) {
                    self.errors.push(e);
                    failed.push(slot_key(slot));
                }
            }
        }
        for key in failed {
            out.samples.remove(&key);
            out.faults.remove(&key);
            out.ratios.retain(|(case, base), _| *case != key && *base != key);
        }
        out
    }

    /// One run of a pair into `out`; Err names the side that failed.
    fn run_pair(
        &mut self,
        tmp: &Path,
        pair: (Slot, Slot),
        iters: usize,
        pin: Option<usize>,
        out: &mut Paired,
    ) -> Result<(), (Slot, String)> {
        let slots = [pair.0, pair.1];
        let blocks = self.scale.p.blocks;
        let mut medians: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let together = pair.0 .2 + pair.1 .2 + 100 <= self.scale.p.room;
        let mut workers: Vec<Driven> = Vec::new();
        for (j, &slot) in slots.iter().enumerate() {
            if !together && j == 1 {
                workers.remove(0).finish().map_err(|e| (slots[0], e))?;
            }
            match self.live_command(tmp, slot, iters, None, pin) {
                None => return Ok(()),
                Some(Err(e)) => return Err((slot, e)),
                Some(Ok((cmd, limit))) => workers.push(Driven::start(cmd, slot, limit).map_err(|e| (slot, e))?),
            }
            if !together {
                for _ in 0..blocks {
                    medians[j].push(workers[0].block(iters, out).map_err(|e| (slot, e))?);
                }
            }
        }
        if together {
            for blk in 0..blocks {
                for j in [blk % 2, 1 - blk % 2] {
                    medians[j].push(workers[j].block(iters, out).map_err(|e| (slots[j], e))?);
                }
            }
        }
        for w in workers {
            let slot = w.slot;
            w.finish().map_err(|e| (slot, e))?;
        }
        let ratios = medians[1].iter().zip(&medians[0]).filter(|(_, a)| **a > 0.0).map(|(b, a)| b / a);
        out.ratios.entry((slot_key(pair.1), slot_key(pair.0))).or_default().extend(ratios);
        Ok(())
    }

    /// Goal 1: start cost against live tracked children, per library, and
    /// the host's posix_spawn + waitpid beside tracked and untracked children.
    pub fn live_scale(&mut self, tmp: &Path) {
        let levels = self.scale.p.levels.clone();
        if levels.is_empty() {
            return;
        }
        let (iters, first, last) = (self.scale.p.iters, levels[0], *levels.last().expect("not empty"));
        let mut pairs: Vec<(Slot, Slot)> = Vec::new();
        for (lib, ..) in START_LIBS {
            pairs.extend(levels[1..].iter().map(|&n| ((lib, "start", first), (lib, "start", n))));
        }
        for (tracked, untracked, _) in HOST_PAIRS {
            pairs.extend(levels.iter().map(|&n| ((untracked, "cycle", n), (tracked, "cycle", n))));
        }
        let mut paired = self.paired_rounds(tmp, &pairs, iters, None);
        let med: HashMap<(&str, usize), f64> =
            paired.samples.iter_mut().filter_map(|(k, v)| median(v).map(|m| (*k, m))).collect();
        let all = &paired.samples;
        let count = |k: &str, n: usize| all.get(&(k, n)).map_or(0, Vec::len);
        let growth = |lib: &'static str, n: usize| match n == first {
            true => Some(1.0),
            false => paired.ratio((lib, n), (lib, first)),
        };
        let section = "7. start of a tiny static child with N live children";
        let mut verdicts = Vec::new();
        let mut peers = Vec::new();
        for (lib, label, zreap) in START_LIBS {
            if !all.keys().any(|(l, _)| *l == lib) {
                continue;
            }
            for &n in &levels {
                let value = med.get(&(lib, n)).map_or(Val::Na("error".into()), |&m| Val::Ns(m));
                let mut row = Row::new(section, &format!("{label}, N={} (n={})", fmt_n(n), count(lib, n)), value)
                    .paired(&format!("same at N={first}"), growth(lib, n));
                if zreap && n >= 5000 {
                    row = row.target(Target::AtMost(FLAT_START));
                    verdicts.push((label, n, row.ratio, row.met()));
                }
                self.rows.push(row);
            }
            let points: Vec<(f64, f64)> =
                levels.iter().filter_map(|&n| med.get(&(lib, n)).map(|&m| (n as f64, m / 1e3))).collect();
            if !points.is_empty() {
                self.scale.plot.push(plot::Series { name: label.into(), points });
            }
            if let Some(r) = growth(lib, last).filter(|_| !zreap) {
                peers.push(format!("{label} {r:.2}×"));
            }
        }
        let mut host_verdicts = Vec::new();
        for (tracked, untracked, what) in HOST_PAIRS {
            let untracked = cycle_key(untracked);
            for &n in &levels {
                let value = |k: &str| med.get(&(k, n)).map_or(Val::Na("error".into()), |&m| Val::Ns(m));
                self.rows.push(
                    Row::new(
                        section,
                        &format!("host {what}, N={} untracked children (n={})", fmt_n(n), count(untracked, n)),
                        value(untracked),
                    )
                    .vs(&format!("same at N={first}"), med.get(&(untracked, first)).copied()),
                );
                let row = Row::new(
                    section,
                    &format!(
                        "host {what}, N={} tracked zreap::spawn children, install(OWN) (n={})",
                        fmt_n(n),
                        count(tracked, n)
                    ),
                    value(tracked),
                )
                .paired("untracked, same N", paired.ratio((tracked, n), (untracked, n)))
                .target(Target::AtMost(FLAT_START));
                host_verdicts.push((what, n, row.ratio, row.met()));
                self.rows.push(row);
            }
        }
        let (raw_growth, fork_growth) = (growth("posix_spawn", last), growth("fork", last));
        let fds = &paired.fds;
        let fault_med: HashMap<(&str, usize), f64> =
            paired.faults.iter_mut().filter_map(|(k, v)| median(v).map(|m| (*k, m / 1000.0))).collect();
        let faults_section = "7. page faults per start + wait (the whole worker), N live children";
        for (lib, label, _) in START_LIBS {
            for &n in &levels {
                if let Some(&f) = fault_med.get(&(lib, n)) {
                    self.rows.push(
                        Row::new(faults_section, &format!("{label}, N={}", fmt_n(n)), Val::Per(f))
                            .vs(&format!("same at N={first}"), fault_med.get(&(lib, first)).copied()),
                    );
                }
            }
        }
        let at = |lib: &str| Some((*fault_med.get(&(lib, first))?, *fault_med.get(&(lib, last))?));
        let tracked_fds = fds.get(&("zspawn-own", last)).copied();
        let host_fork_faults = ["host-tracked-fork", "host-fork", "host-tracked-fork-thread", "host-fork-thread"]
            .map(|lib| fault_med.get(&(cycle_key(lib), first)).copied());
        let why = Why {
            raw_growth,
            fork_growth,
            tracked_fds,
            last,
            zfork_faults: at("zfork-own"),
            fork_faults: at("fork"),
            host_fork_faults,
        };
        self.scale.goals.push(goal_start(&verdicts, &host_verdicts, &peers, first, &why));
    }

    /// Goal 2: exit-to-delivery latency with N live children, with the
    /// workers free to use every CPU and then bound to one (where no wake-up
    /// crosses CPUs, the machine's idle states stop deciding the figure).
    pub fn latency(&mut self, tmp: &Path) {
        let levels = self.scale.p.lat_levels.clone();
        if levels.is_empty() {
            return;
        }
        let mut pairs: Vec<(Slot, Slot)> = Vec::new();
        for &n in &levels {
            let cases = LATENCY_LIBS.iter().filter(|(lib, _, base)| lib != base);
            pairs.extend(cases.map(|&(lib, _, base)| ((base, "latency", n), (lib, "latency", n))));
            pairs.push((("posix_spawn", "latency", n), ("sigchld", "latency", n)));
        }
        for pin in std::iter::once(None).chain(first_cpu().map(Some)) {
            let paired = self.paired_rounds(tmp, &pairs, self.scale.p.lat_iters, pin);
            let goal = self.latency_rows(paired, &levels, pin);
            self.scale.goals.push(goal);
        }
    }

    /// The rows of one latency run; returns its goal paragraph.
    fn latency_rows(&mut self, mut paired: Paired, levels: &[usize], pin: Option<usize>) -> String {
        let med: HashMap<(&str, usize), f64> =
            paired.samples.iter_mut().filter_map(|(k, v)| median(v).map(|m| (*k, m))).collect();
        let all = &paired.samples;
        let section = match pin {
            None => "8. exit-to-delivery latency with N live children".to_string(),
            Some(cpu) => format!("8. exit-to-delivery latency with N live children, every process on CPU {cpu}"),
        };
        let mut verdicts = Vec::new();
        let mut peers = Vec::new();
        let mut floor = Vec::new();
        for &n in levels {
            for (lib, label, base) in LATENCY_LIBS {
                if !all.keys().any(|(l, _)| *l == lib) {
                    continue;
                }
                let value = || med.get(&(lib, n)).map_or(Val::Na("error".into()), |&m| Val::Ns(m));
                let base_label = if base == "sigchld" { "SIGCHLD handler" } else { "waitpid(pid)" };
                let samples = all.get(&(lib, n)).map_or(0, Vec::len);
                let ratio = match lib == base {
                    true => med.get(&(lib, n)).map(|_| 1.0),
                    false => paired.ratio((lib, n), (base, n)),
                };
                let mut row = Row::new(&section, &format!("{label}, N={} (n={samples})", fmt_n(n)), value())
                    .paired(base_label, ratio);
                let bound = match base {
                    "posix_spawn" => Some(LATENCY_BOUND),
                    _ => (n >= HANDLER_BOUND_FROM).then_some(HANDLER_BOUND),
                };
                if let Some(bound) = bound.filter(|_| lib.starts_with('z')) {
                    row = row.target(Target::AtMost(bound));
                    verdicts.push((label, n, row.ratio, row.met(), med.get(&(lib, n)).copied()));
                } else if lib != base && !lib.starts_with('z') {
                    peers.push((label, n, row.ratio));
                }
                self.rows.push(row);
                if lib == "sigchld" {
                    let ratio = paired.ratio(("sigchld", n), ("posix_spawn", n));
                    self.rows.push(
                        Row::new(&section, &format!("{label}, N={}, against waitpid(pid)", fmt_n(n)), value())
                            .paired("waitpid(pid)", ratio),
                    );
                    floor.push((n, ratio));
                }
            }
        }
        goal_latency(pin, &verdicts, &peers, &floor)
    }

    /// Goal 3: system calls per exit, counted with strace.
    pub fn syscalls(&mut self, tmp: &Path) {
        let levels = self.scale.p.sys_levels.clone();
        let section = "9. system calls per exit (strace -f), N live children";
        if Command::new("strace").arg("-V").output().map(|o| o.status.success()).unwrap_or(false) {
            let (first, exits) = (levels.first().copied().unwrap_or(0), self.scale.p.sys_exits);
            let mut per: HashMap<(&str, usize), (f64, String)> = HashMap::new();
            for &n in &levels {
                for (lib, _) in SYSCALL_LIBS {
                    let file = tmp.join(format!("strace-{lib}-{n}.txt"));
                    let kv = match self.live_worker(tmp, (lib, "syscalls", n), exits, Some(&file)) {
                        None => continue,
                        Some(Ok(kv)) => kv,
                        Some(Err(e)) => {
                            self.errors.push(e);
                            continue;
                        }
                    };
                    let trace = std::fs::read_to_string(&file).unwrap_or_default();
                    let _ = std::fs::remove_file(&file);
                    let tids: Vec<&str> = kv.get("tids").map_or(Vec::new(), |t| t.split(',').collect());
                    let (calls, seen, tally) = count_syscalls(&trace, &tids);
                    if seen != exits {
                        self.errors.push(format!("{lib} syscalls N={n}: {seen} of {exits} marker pairs in the trace"));
                        continue;
                    }
                    let mut names: Vec<(String, usize)> = tally.into_iter().collect();
                    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    let names: Vec<String> =
                        names.iter().map(|(name, c)| format!("{name} {:.1}", *c as f64 / seen as f64)).collect();
                    per.insert((lib, n), (calls as f64 / seen as f64, names.join(", ")));
                }
            }
            let mut verdicts = Vec::new();
            for &n in &levels {
                for (lib, label) in SYSCALL_LIBS {
                    let Some((count, _)) = per.get(&(lib, n)) else { continue };
                    let mut row =
                        Row::new(section, &format!("{label}, N={} (exits={exits})", fmt_n(n)), Val::Per(*count))
                            .vs(&format!("same at N={first}"), per.get(&(lib, first)).map(|p| p.0));
                    if COMMON_PATHS.contains(&lib) {
                        row = row.target(Target::CountAtMost(SYSCALLS_PER_EXIT));
                        verdicts.push((label, n, row.met()));
                    } else if lib.starts_with('z') && n > first {
                        row = row.target(Target::AtMost(FLAT_SYSCALLS));
                        verdicts.push((label, n, row.met()));
                    }
                    self.rows.push(row);
                }
            }
            self.scale.goals.push(goal_syscalls(&per, &verdicts, &levels));
        } else {
            self.notes.push("system-call rows skipped: strace not found (scripts/setup.sh installs it)".into());
            self.scale.goals.push("Goal 3 (system calls per exit): not measured: strace not found.".into());
        }
    }
}

/// The key a cycle-mode run of `lib` is pooled under.
fn cycle_key(lib: &'static str) -> &'static str {
    match lib {
        "posix_spawn" => "host-untracked",
        other => other,
    }
}

fn verdict_word(all_met: Option<bool>) -> &'static str {
    match all_met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// Some(all met) over the verdicts; None if there are none or any is unknown.
fn all_met(v: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let v: Vec<Option<bool>> = v.collect();
    if v.is_empty() || v.iter().any(Option::is_none) {
        return None;
    }
    Some(v.iter().all(|m| *m == Some(true)))
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or("n/a".into(), |r| format!("{r:.2}×"))
}

type StartVerdict<'a> = (&'a str, usize, Option<f64>, Option<bool>);

/// What the start-cost rows tell about a cost that grows with N.
struct Why {
    /// Raw posix_spawn's start at the largest N against the smallest.
    raw_growth: Option<f64>,
    /// Raw fork()'s start at the largest N against the smallest (its live
    /// children are forks that did not exec).
    fork_growth: Option<f64>,
    /// Open fds of the zreap::spawn (OWN) worker with the largest N live.
    tracked_fds: Option<u64>,
    last: usize,
    /// Page faults per start + wait at the smallest and the largest N:
    /// zreap::fork under install(OWN), and raw fork().
    zfork_faults: Option<(f64, f64)>,
    fork_faults: Option<(f64, f64)>,
    /// Page faults per host fork() + _exit + waitpid at the smallest N:
    /// beside tracked children, beside untracked ones; the same two with a
    /// thread of the host's own.
    host_fork_faults: [Option<f64>; 4],
}

impl Why {
    fn fds_clause(&self) -> String {
        match self.tracked_fds {
            Some(fds) if fds as usize >= self.last => format!(
                "; with N={} tracked children the process held {fds} open fds, and every fork or posix_spawn \
                 (zreap's own and the host's) copies the fd table",
                fmt_n(self.last)
            ),
            _ => String::new(),
        }
    }

    /// Why the host's own fork() is slower while zreap tracks children.
    fn host_fork_clause(&self, first: usize) -> String {
        match self.host_fork_faults {
            [Some(tracked), Some(untracked), Some(tracked_mt), Some(untracked_mt)] => format!(
                "; the host's fork() + _exit + waitpid took {tracked:.1} page faults beside {first} tracked \
                 children against {untracked:.1} beside untracked ones, and {tracked_mt:.1} against \
                 {untracked_mt:.1} in a host with a thread of its own; run as root (where zreap's keeper is a \
                 pthread) a single-threaded host's fork also takes glibc's multi-threaded path, but these workers \
                 run as uid 65534, where the keeper is a bare thread that glibc does not count: what zreap adds \
                 is its fork handlers (the one page of their code that the child maps again, and the child's \
                 close of the keeper's fds; they write only a page a fork does not share) and its SIGCHLD \
                 handler's run at each exit (the kernel's signal frame on the stack, whose pages the next fork \
                 shares; the handler writes none of them) and the signal itself"
            ),
            _ => String::new(),
        }
    }

    /// Why zreap::fork costs more than fork() and grows: the pages its
    /// bookkeeping writes after each fork, each copied once (copy-on-write).
    fn faults_clause(&self, first: usize) -> String {
        match (self.zfork_faults, self.fork_faults) {
            (Some((za, zb)), Some((fa, fb))) => format!(
                "; zreap::fork (OWN) + zreap::wait took {za:.1} page faults per child at N={first} and {zb:.1} at \
                 N={}, raw fork() + waitpid {fa:.1} and {fb:.1}: after a fork every page the parent writes is \
                 copied once, and zreap writes the page of its hot words (its gate, the table's header, the \
                 counters) and the child resets its state; its records of the children (the slots, the pid map, \
                 the keeper's table) live in mappings a fork leaves out",
                fmt_n(self.last)
            ),
            _ => String::new(),
        }
    }
}

fn goal_start(
    zreap: &[StartVerdict],
    host: &[(&str, usize, Option<f64>, Option<bool>)],
    peers: &[String],
    first: usize,
    why: &Why,
) -> String {
    let last = why.last;
    let met = all_met(zreap.iter().map(|v| v.3));
    let mut g = format!(
        "Goal 1 (start of the 5,000th and 10,000th live tracked child ≤ {FLAT_START:.2}× the start with {first} live, \
         zreap::spawn and zreap::fork, both scopes): {}",
        verdict_word(met)
    );
    if zreap.is_empty() {
        let _ = write!(g, " (this run went up to N={} only)", fmt_n(last));
    } else {
        let list: Vec<String> =
            zreap.iter().map(|(l, n, r, _)| format!("{l} at N={}: {}", fmt_n(*n), ratio_text(*r))).collect();
        let _ = write!(g, ": {}", list.join("; "));
        if met == Some(false) {
            let _ = write!(
                g,
                ". Reason: the start cost of a tracked child grows with the tracked children alive (raw posix_spawn \
                 beside as many untracked children: {} over the same range; raw fork() beside as many forks that \
                 did not exec, which share its memory: {}){}",
                ratio_text(why.raw_growth),
                ratio_text(why.fork_growth),
                why.fds_clause(),
            );
            g.push_str(&why.faults_clause(first));
        }
    }
    let host_met = all_met(host.iter().map(|v| v.3));
    let list: Vec<String> =
        host.iter().map(|(what, n, r, _)| format!("{what} at N={}: {}", fmt_n(*n), ratio_text(*r))).collect();
    let _ = write!(
        g,
        ". The host's own starts beside N tracked children, against beside N untracked ones \
         (≤ {FLAT_START:.2}×): {} ({})",
        verdict_word(host_met),
        list.join(", ")
    );
    if host_met == Some(false) {
        let _ = write!(
            g,
            "; reason: the host's start or wait is slower while zreap tracks children{}{}",
            why.fds_clause(),
            why.host_fork_clause(first)
        );
    }
    if !peers.is_empty() {
        let _ = write!(g, ". Peers, start at N={} against N={first}: {}", fmt_n(last), peers.join(", "));
    }
    g.push('.');
    g
}

type LatencyVerdict<'a> = (&'a str, usize, Option<f64>, Option<bool>, Option<f64>);

/// The lowest CPU this process may run on.
fn first_cpu() -> Option<usize> {
    // SAFETY: an all-zero cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t of the size given.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return None;
    }
    // SAFETY: CPU_ISSET reads the set within its size.
    (0..libc::CPU_SETSIZE as usize).find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
}

/// `floor`: the textbook SIGCHLD handler against waitpid(pid), by N.
fn goal_latency(
    pin: Option<usize>,
    zreap: &[LatencyVerdict],
    peers: &[(&str, usize, Option<f64>)],
    floor: &[(usize, Option<f64>)],
) -> String {
    let met = all_met(zreap.iter().map(|v| v.3));
    let list: Vec<String> = zreap
        .iter()
        .map(|(l, n, r, _, m)| {
            format!("{l} at N={}: {} ({})", fmt_n(*n), m.map_or("n/a".into(), crate::fmt_ns), ratio_text(*r))
        })
        .collect();
    let mut g = format!(
        "Goal 2{} (exit-to-delivery latency at few and many live children: ≤ {LATENCY_BOUND:.2}× waitpid(pid) at the \
         same N for a tracked child (issue 13, part 2), and in the all-children scope ≤ {HANDLER_BOUND:.2}× the \
         textbook SIGCHLD handler from N={} (part 3)): {}: {}",
        pin.map_or(String::new(), |cpu| format!(", every process on CPU {cpu}")),
        fmt_n(HANDLER_BOUND_FROM),
        verdict_word(met),
        list.join("; ")
    );
    if met == Some(false) {
        let first = zreap.iter().map(|v| v.1).min().unwrap_or(0);
        let worst: Vec<String> = zreap
            .iter()
            .filter(|v| v.3 == Some(false))
            .map(|&(l, n, r, ..)| {
                let at_first = zreap.iter().find(|v| v.0 == l && v.1 == first).and_then(|v| v.2);
                let kind = match (at_first, r) {
                    (Some(a), Some(b)) if n > first && b > a * 1.2 => format!(
                        "grows with N, {} at N={}: work per exit that scales with the live children",
                        ratio_text(at_first),
                        fmt_n(first)
                    ),
                    _ => "a fixed extra cost per exit".to_string(),
                };
                format!("{l} at N={} ({kind})", fmt_n(n))
            })
            .collect();
        let _ = write!(g, ". Reason: delivery through zreap costs more than the raw wait: {}", worst.join("; "));
    }
    if !peers.is_empty() {
        let list: Vec<String> =
            peers.iter().map(|(l, n, r)| format!("{l} at N={}: {}", fmt_n(*n), ratio_text(*r))).collect();
        let _ = write!(g, ". Peers against waitpid(pid): {}", list.join("; "));
    }
    if !floor.is_empty() {
        let list: Vec<String> = floor.iter().map(|(n, r)| format!("{} at N={}", ratio_text(*r), fmt_n(*n))).collect();
        let _ = write!(
            g,
            ". Any delivery through a SIGCHLD handler pays the signal's delivery: the textbook handler with its \
             self-pipe against waitpid(pid): {}",
            list.join(", ")
        );
    }
    g.push('.');
    g
}

fn goal_syscalls(
    per: &HashMap<(&str, usize), (f64, String)>,
    verdicts: &[(&str, usize, Option<bool>)],
    levels: &[usize],
) -> String {
    let met = all_met(verdicts.iter().map(|v| v.2));
    let mut g = format!(
        "Goal 3 (system calls per tracked exit: ≤ {SYSCALLS_PER_EXIT:.0} on the common paths, a blocking zreap::wait(pid) \
         and poll(reap_fd) + reap_all in the OWN scope (issue 13, part 2); for the all-children scope beside them, \
         no growth with the live children, ≤ {FLAT_SYSCALLS:.2}× from N={} to N={}): {}",
        levels.first().map_or("-".into(), |n| fmt_n(*n)),
        levels.last().map_or("-".into(), |n| fmt_n(*n)),
        verdict_word(met)
    );
    let last = levels.last().copied().unwrap_or(0);
    for (lib, label) in SYSCALL_LIBS {
        let counts: Vec<String> = levels
            .iter()
            .filter_map(|&n| per.get(&(lib, n)).map(|(c, _)| format!("{c:.1} at N={}", fmt_n(n))))
            .collect();
        if counts.is_empty() {
            continue;
        }
        let _ = write!(g, "; {label}: {}", counts.join(", "));
        if let Some((_, names)) = per.get(&(lib, last)).filter(|_| lib.starts_with('z') || lib == "posix_spawn") {
            let _ = write!(g, " ({names})");
        }
    }
    if met == Some(false) {
        g.push_str(". Reason: see the calls named per path above");
    }
    g.push('.');
    g
}
