//! zreap-stress: tries hard to break zreap's promises and exits non-zero, with
//! the violations spelled out, when one breaks.
//!
//! ```text
//! zreap-stress [--quick] [--seed N] [--size N] [--case NAME]... SCENARIO...
//! ```
//!
//! Scenarios: children, pid-reuse, echo, sigint, limits, eintr, daemon, waits, all
//! (docs/stress.md says what each does and checks). Each case of a scenario
//! runs in a fresh process (this binary re-executed as `zreap-stress __worker
//! SCENARIO CASE SIZE SEED`), because zreap's state and signal dispositions
//! are process-wide; the worker prints a one-line summary and exits 0, or
//! prints its violations and exits non-zero. This process is a child
//! subreaper: whatever a worker leaves behind comes here, is counted as a
//! violation, killed and reaped.

mod children;
mod daemon;
mod echo;
mod eintr;
mod limits;
mod pidreuse;
mod sigint;
mod util;
mod waits;
mod zr;

use clap::{Parser, ValueEnum};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::Res;

#[derive(Parser)]
#[command(name = "zreap-stress", about = "Stress zreap's promises; non-zero exit on any violation")]
struct Cli {
    /// Seconds-long versions of the scenarios (the test suite's).
    #[arg(long)]
    quick: bool,
    /// Seed of the random choices (default: from the clock); printed in the summaries.
    #[arg(long)]
    seed: Option<u64>,
    /// Size of each case instead of the default: children (children), thousands of
    /// tracked children after the first pid wrap (pid-reuse), rounds or iterations.
    #[arg(long)]
    size: Option<u64>,
    /// Run only these cases of the scenarios (e.g. `own`, `ns-untracked`).
    #[arg(long = "case")]
    cases: Vec<String>,
    #[arg(value_enum, required = true)]
    scenarios: Vec<Scenario>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Children,
    PidReuse,
    Echo,
    Sigint,
    Limits,
    Eintr,
    Daemon,
    Waits,
    All,
}

const SCENARIOS: [Scenario; 8] = [
    Scenario::Children,
    Scenario::PidReuse,
    Scenario::Echo,
    Scenario::Sigint,
    Scenario::Limits,
    Scenario::Eintr,
    Scenario::Daemon,
    Scenario::Waits,
];

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Children => "children",
            Scenario::PidReuse => "pid-reuse",
            Scenario::Echo => "echo",
            Scenario::Sigint => "sigint",
            Scenario::Limits => "limits",
            Scenario::Eintr => "eintr",
            Scenario::Daemon => "daemon",
            Scenario::Waits => "waits",
            Scenario::All => "all",
        }
    }

    fn from_name(name: &str) -> Option<Scenario> {
        SCENARIOS.into_iter().find(|s| s.name() == name)
    }

    fn cases(self) -> &'static [&'static str] {
        match self {
            Scenario::Children => children::CASES,
            Scenario::PidReuse => pidreuse::CASES,
            Scenario::Echo => echo::CASES,
            Scenario::Sigint => sigint::CASES,
            Scenario::Limits => limits::CASES,
            Scenario::Eintr => eintr::CASES,
            Scenario::Daemon => daemon::CASES,
            Scenario::Waits => waits::CASES,
            Scenario::All => &[],
        }
    }

    /// The default size of one case: (quick, full).
    fn size(self) -> (u64, u64) {
        match self {
            Scenario::Children => (1_000, 100_000),
            Scenario::PidReuse => (5, 300),
            Scenario::Echo => (20, 1_000),
            Scenario::Sigint => (50, 1_000),
            Scenario::Limits => (2, 50),
            Scenario::Eintr => (1_000, 20_000),
            Scenario::Daemon => (40, 1_000),
            Scenario::Waits => (2_000, 100_000),
            Scenario::All => (0, 0),
        }
    }

    /// A generous bound on one case's run time, for a case of `size`.
    fn limit(self, size: u64) -> Duration {
        let per_item_ms = match self {
            Scenario::Children => 20,
            Scenario::PidReuse => 10_000,
            Scenario::Echo => 2_000,
            Scenario::Sigint => 500,
            Scenario::Limits => 5_000,
            Scenario::Eintr => 20,
            Scenario::Daemon => 1_000,
            Scenario::Waits => 20,
            Scenario::All => 0,
        };
        Duration::from_secs(120) + Duration::from_millis(per_item_ms * size)
    }

    fn worker(self, case: &str, size: u64, seed: u64) -> Res<String> {
        match self {
            Scenario::Children => children::worker(case, size, seed),
            Scenario::PidReuse => pidreuse::worker(case, size, seed),
            Scenario::Echo => echo::worker(case, size, seed),
            Scenario::Sigint => sigint::worker(case, size, seed),
            Scenario::Limits => limits::worker(case, size, seed),
            Scenario::Eintr => eintr::worker(case, size, seed),
            Scenario::Daemon => daemon::worker(case, size, seed),
            Scenario::Waits => waits::worker(case, size, seed),
            Scenario::All => Err("`all` is no worker".into()),
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("__child") => util::child_main(&argv[2..]),
        Some("__worker") => std::process::exit(worker_main(&argv[2..])),
        Some("__helper") => std::process::exit(helper_main(&argv[2..])),
        _ => std::process::exit(orchestrate(Cli::parse())),
    }
}

/// `__worker SCENARIO CASE SIZE SEED`: one case; exit 0 with a summary line
/// on stdout, or 1 with the violations on stderr.
fn worker_main(args: &[String]) -> i32 {
    let arg = |i: usize| args.get(i).map_or("", String::as_str);
    let (Some(scenario), Ok(size), Ok(seed)) = (Scenario::from_name(arg(0)), arg(2).parse(), arg(3).parse()) else {
        eprintln!("bad worker arguments {args:?}");
        return 2;
    };
    match scenario.worker(arg(1), size, seed) {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(violations) => {
            eprintln!("{violations}");
            1
        }
    }
}

/// `__helper NAME ARGS...`: the processes scenarios start (echo server and
/// client, the Ctrl+C parent, the daemon's caller).
fn helper_main(args: &[String]) -> i32 {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        Some("echo-server") => echo::server(),
        Some("echo-client") => echo::client(rest),
        Some("sigint-parent") => sigint::parent(rest),
        Some("daemon-caller") => daemon::caller(rest),
        _ => {
            eprintln!("unknown helper {args:?}");
            2
        }
    }
}

fn orchestrate(cli: Cli) -> i32 {
    if let Err(e) = util::become_subreaper() {
        eprintln!("{e}");
        return 2;
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let scenarios: Vec<Scenario> =
        if cli.scenarios.contains(&Scenario::All) { SCENARIOS.to_vec() } else { cli.scenarios.clone() };
    for case in &cli.cases {
        if !scenarios.iter().any(|s| s.cases().contains(&case.as_str())) {
            eprintln!("no scenario given has a case {case:?}");
            return 2;
        }
    }
    println!("zreap-stress: seed {seed}{}", if cli.quick { ", quick" } else { "" });
    let (mut passed, mut failed) = (0, 0);
    for scenario in scenarios {
        let (quick, full) = scenario.size();
        let size = cli.size.unwrap_or(if cli.quick { quick } else { full });
        for (i, &case) in scenario.cases().iter().enumerate() {
            if !cli.cases.is_empty() && !cli.cases.iter().any(|c| c == case) {
                continue;
            }
            let case_seed = seed.wrapping_add(i as u64 * 0x1000_0001);
            let label = format!("{}/{case}", scenario.name());
            match run_worker(scenario, case, size, case_seed) {
                Ok(line) => {
                    passed += 1;
                    println!("ok   {label}: {line}");
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL {label}: {why}");
                }
            }
        }
    }
    println!("zreap-stress: {passed} passed, {failed} failed (seed {seed})");
    i32::from(failed > 0)
}

/// Runs one case in a fresh process within its time limit; afterwards reaps
/// (and counts as a violation) anything it left behind.
fn run_worker(scenario: Scenario, case: &str, size: u64, seed: u64) -> Res<String> {
    let limit = scenario.limit(size);
    let started = Instant::now();
    let mut child = Command::new(util::self_exe().to_str().unwrap_or("/proc/self/exe"))
        .args(["__worker", scenario.name(), case, &size.to_string(), &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start worker: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait worker: {e}"))? {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the worker left (daemons, orphans) holds its pipes: reap first.
    let (reaped, killed) = util::reap_orphans(Duration::from_secs(10));
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let secs = started.elapsed().as_secs_f64();
    let mut problems = Vec::new();
    match status {
        None => problems.push(format!("no end within {limit:?}: killed")),
        Some(s) if !s.success() => problems.push(format!("worker {s}")),
        Some(_) => {}
    }
    if killed > 0 || reaped > 0 {
        problems.push(format!("{reaped} process(es) left behind by the case ({killed} still running after 10 s)"));
    }
    if problems.is_empty() {
        Ok(format!("{} ({secs:.1} s)", stdout.trim()))
    } else {
        Err(format!(
            "{}\n{}{}({secs:.1} s)",
            problems.join("; "),
            stderr.trim_end(),
            if stderr.is_empty() { "" } else { "\n" }
        ))
    }
}
