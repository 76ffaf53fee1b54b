//! zreap-bench: zreap against the raw system calls, side by side, in one run.
//!
//! ```text
//! zreap-bench [--quick] [--out DIR] [--only NAME]
//! ```
//!
//! Runs every measurement (see docs/benchmarks.md for what each one does),
//! prints a table of medians and ratios against the raw baseline, and writes
//! `DIR/benchmarks.md` and `DIR/spawn_latency.svg` (DIR defaults to `docs/`
//! for a full run, to `target/zreap-bench/` for `--quick` and `--only`, so
//! that a partial run never replaces the full report).
//! `--quick` is a seconds-long smoke run; `--only` runs one section: spawn,
//! zfork, storm, own-scale, shim, memory, live-scale, latency, syscalls.
//! Every measurement runs in a fresh child process (this binary re-executed as `zreap-bench __worker ...`),
//! because zreap's state is process-wide.

mod live;
mod plot;
mod scale;
mod shim;
mod workers;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SECTIONS: [&str; 9] =
    ["spawn", "zfork", "storm", "own-scale", "shim", "memory", "live-scale", "latency", "syscalls"];

/// The spawn methods, in table order; the first is the baseline.
const SPAWN_METHODS: [&str; 6] =
    ["posix_spawn", "zspawn", "zspawn-pdeathsig", "fork+execve", "vfork+execve", "Command"];

const NOTES_BEGIN: &str = "<!-- BEGIN NOTES (kept by zreap-bench across runs) -->";
const NOTES_END: &str = "<!-- END NOTES -->";

struct Params {
    sizes: Vec<usize>,
    lat_rounds: usize,
    lat_iters: usize,
    lat_warmup: usize,
    fork_iters: usize,
    storm_n: usize,
    storm_reps: usize,
    storm_settle_ms: usize,
    scale_small: usize,
    scale_big: usize,
    scale_reps: usize,
    shim_iters: usize,
    shim_reps: usize,
    mem_n: usize,
}

impl Params {
    fn new(quick: bool, notes: &mut Vec<String>) -> Params {
        let storm_n = storm_limit(if quick { 200 } else { 10_000 }, notes);
        if quick {
            return Params {
                sizes: vec![8, 64],
                lat_rounds: 2,
                lat_iters: 5,
                lat_warmup: 1,
                fork_iters: 10,
                storm_n,
                storm_reps: 1,
                storm_settle_ms: 50,
                scale_small: 10,
                scale_big: 200.min(storm_n),
                scale_reps: 20,
                shim_iters: 200,
                shim_reps: 1,
                mem_n: 200.min(storm_n),
            };
        }
        let mut sizes = vec![8, 1024];
        let avail = meminfo("MemAvailable") / 1024;
        // A 4 GiB parent plus room for the rest of the machine.
        if avail >= 6 * 1024 {
            sizes.push(4096);
        } else {
            notes.push(format!("4 GiB parent skipped: MemAvailable is only {avail} MiB"));
        }
        Params {
            sizes,
            lat_rounds: 8,
            lat_iters: 25,
            lat_warmup: 5,
            fork_iters: 125,
            storm_n,
            storm_reps: 2,
            storm_settle_ms: 500,
            scale_small: 10,
            scale_big: storm_n,
            scale_reps: 200,
            shim_iters: 1000,
            shim_reps: 20,
            mem_n: storm_n,
        }
    }
}

/// How many children a storm may have: `want`, or fewer if RLIMIT_NPROC or
/// pid_max forbid (stated in the notes).
fn storm_limit(want: usize, notes: &mut Vec<String>) -> usize {
    let running = std::fs::read_dir("/proc")
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok())))
        .map(Iterator::count)
        .unwrap_or(0);
    let pid_max: usize =
        std::fs::read_to_string("/proc/sys/kernel/pid_max").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(32768);
    // SAFETY: rl is a valid out-pointer.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut rl) };
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let nproc = if root || rl.rlim_cur == libc::RLIM_INFINITY { usize::MAX } else { rl.rlim_cur as usize };
    // Threads count against both limits; keep a margin for the rest of the machine.
    let room = pid_max.saturating_sub(running * 4 + 2000).min(nproc.saturating_sub(running * 4 + 500));
    if room < want {
        notes.push(format!(
            "storm and scaling runs use {room} children instead of {want}: pid_max {pid_max}, RLIMIT_NPROC {}, {running} processes running",
            if nproc == usize::MAX { "unlimited".to_string() } else { nproc.to_string() }
        ));
        room
    } else {
        want
    }
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- rows

#[derive(Clone)]
enum Val {
    Ns(f64),
    Bytes(f64),
    Ratio(f64),
    Count(u64),
    /// A mean count (system calls per exit).
    Per(f64),
    Na(String),
}

impl Val {
    fn num(&self) -> Option<f64> {
        match *self {
            Val::Ns(v) | Val::Bytes(v) | Val::Ratio(v) | Val::Per(v) => Some(v),
            Val::Count(v) => Some(v as f64),
            Val::Na(_) => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Val::Ns(ns) => fmt_ns(*ns),
            Val::Bytes(b) if b.abs() >= 10.0 * 1024.0 => format!("{:.1} KiB", b / 1024.0),
            Val::Bytes(b) => format!("{b:.0} B"),
            Val::Ratio(r) => format!("{r:.1}×"),
            Val::Count(c) => c.to_string(),
            Val::Per(c) => format!("{c:.1}"),
            Val::Na(why) => why.clone(),
        }
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A target: the ratio (or value) must be at most / at least `limit`.
#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
    Zero,
    /// The value itself (not a ratio) is at most this: a count.
    CountAtMost(f64),
}

impl Target {
    fn show(self) -> String {
        match self {
            Target::AtMost(l) => format!("≤ {l:.2}×"),
            Target::AtLeast(l) => format!("≥ {l:.0}×"),
            Target::Zero => "0".into(),
            Target::CountAtMost(l) => format!("≤ {l:.0}"),
        }
    }
}

struct Row {
    section: String,
    name: String,
    value: Val,
    /// Ratio against `baseline` (for rows that have one).
    ratio: Option<f64>,
    baseline: String,
    target: Option<Target>,
    /// Set when the row fails for a reason other than its number.
    fail: Option<String>,
}

impl Row {
    fn new(section: &str, name: &str, value: Val) -> Row {
        Row {
            section: section.into(),
            name: name.into(),
            value,
            ratio: None,
            baseline: String::new(),
            target: None,
            fail: None,
        }
    }

    fn vs(mut self, baseline_name: &str, baseline: Option<f64>) -> Row {
        self.baseline = baseline_name.into();
        if let (Some(v), Some(b)) = (self.value.num(), baseline) {
            if b > 0.0 {
                self.ratio = Some(v / b);
            }
        }
        self
    }

    /// Like [`Row::vs`], with a ratio measured in pairs: the median over
    /// rounds of this row's run against the baseline's run of the same round.
    fn paired(mut self, baseline_name: &str, ratio: Option<f64>) -> Row {
        self.baseline = baseline_name.into();
        if self.value.num().is_some() {
            self.ratio = ratio;
        }
        self
    }

    fn target(mut self, t: Target) -> Row {
        self.target = Some(t);
        self
    }

    /// None: no target; Some(true/false): met or missed.
    fn met(&self) -> Option<bool> {
        let t = self.target?;
        if self.fail.is_some() {
            return Some(false);
        }
        let x = match (t, &self.value) {
            (_, Val::Na(_)) => return None,
            (Target::Zero, v) => return v.num().map(|v| v == 0.0),
            (Target::CountAtMost(l), v) => return v.num().map(|v| v <= l),
            (_, Val::Ratio(r)) => *r,
            _ => self.ratio?,
        };
        Some(match t {
            Target::AtMost(l) => x <= l,
            Target::AtLeast(l) => x >= l,
            Target::Zero => x == 0.0,
            Target::CountAtMost(l) => x <= l,
        })
    }

    fn verdict(&self) -> String {
        let mut s = match self.met() {
            None if self.target.is_some() => "n/a".to_string(),
            None => String::new(),
            Some(true) => "met".to_string(),
            Some(false) => "MISSED".to_string(),
        };
        if let Some(why) = &self.fail {
            s = format!("{s} ({why})");
        }
        s
    }
}

fn median(samples: &mut [u64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    Some(if n % 2 == 1 { samples[n / 2] as f64 } else { (samples[n / 2 - 1] + samples[n / 2]) as f64 / 2.0 })
}

/// The median of `values` (ratios), None when there are none.
fn median_f64(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

// ---------------------------------------------------------------- workers

/// Runs `zreap-bench __worker ARGS` and returns its key=value output.
fn worker(args: &[String]) -> Result<HashMap<String, String>, String> {
    // /proc/self/exe, not current_exe(): a rebuild during the run replaces the
    // file, while /proc/self/exe still reaches the binary that is running.
    let out = Command::new("/proc/self/exe")
        .arg("__worker")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run worker {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "worker {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut kv = HashMap::new();
    for tok in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Some((k, v)) = tok.split_once('=') {
            kv.insert(k.to_string(), v.to_string());
        }
    }
    Ok(kv)
}

fn samples_of(kv: &HashMap<String, String>) -> Vec<u64> {
    kv.get("samples").map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_default()
}

fn num(kv: &HashMap<String, String>, key: &str) -> u64 {
    kv.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

fn size_label(mib: usize) -> String {
    if mib >= 1024 && mib & 1023 == 0 {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

struct Bench {
    p: Params,
    rows: Vec<Row>,
    errors: Vec<String>,
    notes: Vec<String>,
    plot: Vec<plot::Series>,
    /// RSS before/after making N tracked children, from the OWN-scaling run.
    tracked_rss: Option<HashMap<String, String>>,
    scale: scale::Scale,
}

impl Bench {
    fn latency_samples(&mut self, jobs: &[(String, usize)], iters: usize) -> HashMap<(String, usize), Vec<u64>> {
        // Rounds over every (method, size), with the order rotated each round,
        // so slow drift of the machine spreads evenly over the methods.
        let mut all: HashMap<(String, usize), Vec<u64>> = HashMap::new();
        let mut failed: HashMap<(String, usize), String> = HashMap::new();
        for round in 0..self.p.lat_rounds {
            for k in 0..jobs.len() {
                let (method, mib) = &jobs[(k + round) % jobs.len()];
                if failed.contains_key(&(method.clone(), *mib)) {
                    continue;
                }
                let args = [s("latency"), method.clone(), s(mib), s(iters), s(self.p.lat_warmup)];
                match worker(&args) {
                    Ok(kv) => all.entry((method.clone(), *mib)).or_default().extend(samples_of(&kv)),
                    Err(e) => {
                        self.errors.push(e.clone());
                        failed.insert((method.clone(), *mib), e);
                    }
                }
            }
        }
        for key in failed.keys() {
            all.remove(key);
        }
        all
    }

    fn spawn(&mut self) {
        let sizes = self.p.sizes.clone();
        let jobs: Vec<(String, usize)> =
            sizes.iter().flat_map(|&mib| SPAWN_METHODS.iter().map(move |m| (m.to_string(), mib))).collect();
        let mut all = self.latency_samples(&jobs, self.p.lat_iters);
        let mut medians: HashMap<(String, usize), f64> = HashMap::new();
        for (k, v) in all.iter_mut() {
            if let Some(m) = median(v) {
                medians.insert(k.clone(), m);
            }
        }
        let med = |m: &str, mib: usize| medians.get(&(m.to_string(), mib)).copied();
        for &mib in &sizes {
            let section = format!("1. spawn+wait /bin/true, {} parent", size_label(mib));
            let base = med("posix_spawn", mib);
            for m in SPAWN_METHODS {
                let n = all.get(&(m.to_string(), mib)).map_or(0, Vec::len);
                let value = med(m, mib).map_or(Val::Na("error".into()), Val::Ns);
                let name = match m {
                    "zspawn-pdeathsig" => "zspawn, pdeathsig, non-main thread".to_string(),
                    _ => m.to_string(),
                };
                let mut row = Row::new(&section, &format!("{name} (n={n})"), value).vs("posix_spawn", base);
                match m {
                    "zspawn" => row = row.target(Target::AtMost(1.10)),
                    "zspawn-pdeathsig" => row = row.target(Target::AtMost(1.5)),
                    _ => {}
                }
                self.rows.push(row);
            }
            if mib == 1024 {
                let value = match (med("fork+execve", mib), med("zspawn", mib)) {
                    (Some(f), Some(z)) if z > 0.0 => Val::Ratio(f / z),
                    _ => Val::Na("error".into()),
                };
                self.rows.push(
                    Row::new(&section, "zspawn speed-up over fork+execve", value)
                        .vs("fork+execve", None)
                        .target(Target::AtLeast(20.0)),
                );
            }
        }
        for m in SPAWN_METHODS {
            let points: Vec<(f64, f64)> =
                sizes.iter().filter_map(|&mib| med(m, mib).map(|ns| (mib as f64, ns / 1e3))).collect();
            if !points.is_empty() {
                let name = if m == "zspawn-pdeathsig" { "zspawn+pdeathsig (thread)" } else { m };
                self.plot.push(plot::Series { name: name.into(), points });
            }
        }
    }

    fn zfork(&mut self) {
        let jobs = vec![(s("fork"), 8), (s("zfork"), 8)];
        let mut all = self.latency_samples(&jobs, self.p.fork_iters);
        let section = "2. fork + _exit + wait, 8 MiB parent";
        let base = all.get_mut(&(s("fork"), 8)).and_then(|v| median(v));
        let zf = all.get_mut(&(s("zfork"), 8)).and_then(|v| median(v));
        let n = |m: &str| all.get(&(m.to_string(), 8)).map_or(0, Vec::len);
        let (nf, nz) = (n("fork"), n("zfork"));
        let val = |m: Option<f64>| m.map_or(Val::Na("error".into()), Val::Ns);
        self.rows.push(Row::new(section, &format!("raw fork + waitpid (n={nf})"), val(base)).vs("fork", base));
        self.rows.push(
            Row::new(section, &format!("zreap::fork + zreap::wait (n={nz})"), val(zf))
                .vs("fork", base)
                .target(Target::AtMost(1.05)),
        );
    }

    fn storm(&mut self) {
        let n = self.p.storm_n;
        let variants: [(&str, &str, Option<Target>); 5] = [
            ("raw", "raw blocking waitpid(-1) loop", None),
            ("all-handler", "install(0) handler + reap_all, fork() children", Some(Target::AtMost(1.3))),
            ("all-handler-zfork", "install(0) handler + reap_all, zreap::fork children", Some(Target::AtMost(1.3))),
            ("own", "install(OWN) + reap_all, zreap::fork children (pidfds)", Some(Target::AtMost(1.5))),
            ("no-handler", "install(NO_HANDLER), poll(reap_fd) + reap_all, fork() children", Some(Target::AtMost(1.5))),
        ];
        let mut runs: HashMap<&str, Vec<HashMap<String, String>>> = HashMap::new();
        for rep in 0..self.p.storm_reps {
            for k in 0..variants.len() {
                let v = variants[(k + rep) % variants.len()].0;
                match worker(&[s("storm"), s(v), s(n), s(self.p.storm_settle_ms)]) {
                    Ok(kv) => runs.entry(v).or_default().push(kv),
                    Err(e) => self.errors.push(e),
                }
            }
        }
        let section = format!("3. reap storm, {n} children released at once");
        let mut base = None;
        let mut zombies_total = 0;
        let mut zombie_runs = 0;
        for (v, name, target) in variants {
            let rs = runs.get(v).cloned().unwrap_or_default();
            let mut ns: Vec<u64> = rs.iter().map(|kv| num(kv, "ns")).collect();
            let med = median(&mut ns);
            if v == "raw" {
                base = med;
            }
            let made: u64 = rs.iter().map(|kv| num(kv, "n")).min().unwrap_or(0);
            let reported: u64 = rs.iter().map(|kv| num(kv, "reported")).min().unwrap_or(0);
            let dropped: u64 = rs.iter().map(|kv| num(kv, "dropped")).max().unwrap_or(0);
            let bad: u64 = rs.iter().map(|kv| num(kv, "bad_status")).sum();
            let zombies: u64 = rs.iter().map(|kv| num(kv, "zombies")).sum();
            zombies_total += zombies;
            zombie_runs += rs.len();
            for kv in &rs {
                if let Some(e) = kv.get("fork_error") {
                    self.notes.push(format!("storm {v}: stopped making children at {}: {e}", num(kv, "n")));
                }
            }
            let value = med.map_or(Val::Na("error".into()), Val::Ns);
            let mut row = Row::new(&section, &format!("{name} (runs={})", rs.len()), value).vs("waitpid loop", base);
            if let Some(t) = target {
                row = row.target(t);
            }
            let mut why = Vec::new();
            if made < n as u64 && !rs.is_empty() {
                why.push(format!("only {made} children made"));
            }
            if reported < made {
                why.push(format!("only {reported} of {made} exits reported"));
            }
            if dropped > 0 {
                why.push(format!("up to {dropped} exits dropped"));
            }
            if bad > 0 {
                why.push(format!("{bad} bad statuses"));
            }
            if zombies > 0 {
                why.push(format!("{zombies} zombies left"));
            }
            if !why.is_empty() {
                row.fail = Some(why.join(", "));
            }
            self.rows.push(row);
        }
        self.rows.push(
            Row::new(&section, &format!("zombies left after all {zombie_runs} storm runs"), Val::Count(zombies_total))
                .target(Target::Zero),
        );
        if zombies_total > 0 {
            self.errors.push(format!("{zombies_total} zombies left after the storm runs"));
        }
    }

    fn own_scale(&mut self) {
        let (small, big, reps) = (self.p.scale_small, self.p.scale_big, self.p.scale_reps);
        let section = "4. OWN scope: one exit handled with N live tracked children";
        let mut med = HashMap::new();
        let mut make = HashMap::new();
        for (kind, n) in [("own-scale", small), ("own-scale", big), ("scan", small), ("scan", big)] {
            match worker(&[s(kind), s(n), s(reps)]) {
                Ok(kv) => {
                    if kind == "own-scale" && n == big {
                        self.tracked_rss = Some(kv.clone());
                    }
                    if num(&kv, "zombies") > 0 {
                        self.errors.push(format!("{kind} {n}: {} zombies left", num(&kv, "zombies")));
                    }
                    make.insert((kind, n), num(&kv, "make_ns") as f64 / n.max(1) as f64);
                    let mut v = samples_of(&kv);
                    if let Some(m) = median(&mut v) {
                        med.insert((kind, n), m);
                    }
                }
                Err(e) => self.errors.push(e),
            }
        }
        let val = |k: &str, n: usize| med.get(&(k, n)).copied().map_or(Val::Na("error".into()), Val::Ns);
        let ratio = |k: &str| match (med.get(&(k, big)), med.get(&(k, small))) {
            (Some(b), Some(s)) if *s > 0.0 => Val::Ratio(b / s),
            _ => Val::Na("error".into()),
        };
        let zw = "release to zreap::wait(pid) (the keeper reaps)";
        self.rows.push(Row::new(section, &format!("{zw}, N={small} (n={reps})"), val("own-scale", small)));
        self.rows.push(Row::new(section, &format!("{zw}, N={big} (n={reps})"), val("own-scale", big)));
        self.rows.push(
            Row::new(section, &format!("{zw}: ratio N={big} / N={small}"), ratio("own-scale"))
                .target(Target::AtMost(1.5)),
        );
        let sc = "contrast: waitpid(pid, WNOHANG) scan of all children";
        self.rows.push(Row::new(section, &format!("{sc}, N={small} (n={reps})"), val("scan", small)));
        self.rows.push(Row::new(section, &format!("{sc}, N={big} (n={reps})"), val("scan", big)));
        self.rows.push(Row::new(section, &format!("{sc}: ratio N={big} / N={small}"), ratio("scan")));
        let mk = |k: &str, n: usize| make.get(&(k, n)).copied().map_or(Val::Na("error".into()), Val::Ns);
        for n in [small, big] {
            let base = make.get(&("scan", n)).copied();
            self.rows.push(Row::new(
                section,
                &format!("making N={n} blocked children: fork(), per child"),
                mk("scan", n),
            ));
            self.rows.push(
                Row::new(
                    section,
                    &format!("making N={n} blocked children: zreap::fork under install(OWN), per child"),
                    mk("own-scale", n),
                )
                .vs("fork()", base),
            );
        }
    }

    fn memory(&mut self) {
        let section = "6. memory";
        // The OWN-scaling run with N live children measured it already.
        let measured = match self.tracked_rss.take() {
            Some(kv) => Ok(kv),
            None => worker(&[s("memory"), s(self.p.mem_n)]),
        };
        match measured {
            Ok(kv) => {
                let n = num(&kv, "n").max(1);
                let delta = num(&kv, "rss_after") as f64 - num(&kv, "rss_before") as f64;
                self.rows.push(Row::new(
                    section,
                    &format!("RSS per tracked child ({n} live zreap::fork children)"),
                    Val::Bytes(delta / n as f64),
                ));
                if num(&kv, "zombies") > 0 {
                    self.errors.push(format!("memory: {} zombies left", num(&kv, "zombies")));
                }
            }
            Err(e) => {
                self.rows.push(Row::new(section, "RSS per tracked child", Val::Na("error".into())));
                self.errors.push(e);
            }
        }
        for (flags, name) in [("empty", "install(0)"), ("own", "install(OWN)"), ("no-handler", "install(NO_HANDLER)")] {
            let label = format!("RSS added by {name}, fresh process");
            match worker(&[s("install-rss"), s(flags)]) {
                Ok(kv) => {
                    let delta = num(&kv, "rss_after") as f64 - num(&kv, "rss_before") as f64;
                    self.rows.push(Row::new(section, &label, Val::Bytes(delta)));
                }
                Err(e) => {
                    self.rows.push(Row::new(section, &label, Val::Na("error".into())));
                    self.errors.push(e);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- output

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "| measurement | variant | median | ratio | vs | target | result |");
    let _ = writeln!(t, "| --- | --- | ---: | ---: | --- | --- | --- |");
    for r in rows {
        let ratio = r.ratio.map_or(String::new(), |x| format!("{x:.2}×"));
        let target = r.target.map_or(String::new(), Target::show);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.section,
            r.name,
            r.value.show(),
            ratio,
            r.baseline,
            target,
            r.verdict()
        );
    }
    t
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, v)| v.trim().to_string())
}

fn machine() -> Vec<String> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap_or_default();
    let glibc = Command::new("ldd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_default();
    vec![
        format!("kernel (uname -r): {kernel}"),
        format!("CPU: {} ({cores} cores)", cpu_model()),
        format!(
            "memory: {:.1} GiB total, {:.1} GiB available at start",
            meminfo("MemTotal") as f64 / 1048576.0,
            meminfo("MemAvailable") as f64 / 1048576.0
        ),
        format!("transparent huge pages: {} (parents use 4 KiB pages: MADV_NOHUGEPAGE)", thp.trim()),
        format!("pid_max: {}", pid_max.trim()),
        format!("libc: {glibc}"),
        format!("build: {}", if cfg!(debug_assertions) { "debug" } else { "release" }),
    ]
}

fn loadavg() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().take(3).collect::<Vec<_>>().join(", ")
}

fn command_line(args: &[String]) -> String {
    let rest = if args.is_empty() { String::new() } else { format!(" -- {}", args.join(" ")) };
    let profile = if cfg!(debug_assertions) { "" } else { " --release" };
    format!("cargo run{profile} -p zreap-bench --bin zreap-bench{rest}")
}

const METHOD_TEXT: &str = "\
How each number is made (all in `bench/src/workers.rs`; every measurement runs in a fresh
process, the bench binary re-executed as `zreap-bench __worker ...`, because zreap's state
is process-wide):

1. **spawn + wait.** The worker maps and writes every 4 KiB page of the stated size, then
   times start + wait of `/bin/true` per iteration (after a few untimed warm-up ones):
   `zreap::spawn` + `zreap::wait`; `posix_spawn` + `waitpid`; `fork` + `execve` + `waitpid`;
   `vfork` + `execve` + `waitpid`; `std::process::Command::status`; and `zreap::spawn` with
   `pdeathsig = SIGTERM` called from a second thread (the library hands the clone to its
   long-lived spawner thread). Each (method, size) runs in its own process, in rounds whose
   order rotates, and the samples of all rounds are pooled for the median.
2. **zfork.** As 1 with an 8 MiB parent; the child `_exit(0)`s at once.
3. **Reap storm.** The worker makes N children blocked in `read()` on one pipe, sleeps so all
   reach it, then closes the write end and times until every exit is reaped and reported:
   a blocking `waitpid(-1)` loop (baseline), or `poll(zreap::reap_fd())` + `zreap::reap_all`
   until N exits are reported (or reported + dropped reach N) after the stated `install`.
   Zombies (children in state Z, from /proc) are counted after each run.
4. **OWN scaling.** With N live tracked (`zreap::fork`, blocked) children under
   `install(OWN)`, one more tracked child exits while SIGCHLD is blocked; once it is a zombie
   (`waitid(WNOWAIT)`), the time from unblocking SIGCHLD (the handler runs its pass) until
   `zreap::wait(pid)` returns its exit. Contrast: the time of one `waitpid(pid, WNOHANG)`
   pass over all N+1 plain children that finds the one exit.
5. **Shim.** Built at bench time with `cc`: `bench/forkexec.c` (N × fork + execve + waitpid,
   timing itself), `bench/shim/tiny.c` (a static child that loads nothing: only its
   `_start`, exit 0) and `bench/shim/empty.c` (an empty preloaded `.so`). Compared: no
   preload, the empty `.so`, `target/<profile>/libzreap_preload.so` with `ZREAP_REAP=handler`
   and `all` (every run has an environment of the same size: ZREAP_REAP is set in each, and
   ZREAP_BENCH_PAD fills up to the longest; a different size moves the page boundaries under
   the stack's first frames, and with them the page faults of every fork).
   Instructions: `valgrind --tool=callgrind` of one `/bin/true` (which loads the preload), and
   of the loop at N and 2N iterations (the difference over N: the parent's user-space
   instructions per child). Wall time and page faults (`getrusage`, the loop's parent and
   children), and the mappings of the loop's process after it (`/proc/self/maps`: a fork
   copies each, the child's exec tears each down, so each makes every fork + exec dearer):
   the loop with the tiny child, in many short rounds that run every case once in
   a rotating order; a ratio is the median over rounds of a case's run against the
   baseline's run of the same round (the machine's speed drifts between rounds, less within
   one), the time shown the median run; run by root, every case
   runs as uid/gid 65534 (a process that can change its credentials gets a pthread for the
   shim's reaper, a bare clone otherwise), and one more `all` case runs as root.
   Make: a generated project of small C files (`cc -O1 -c` each, one link) built with
   `make -s -j2` from clean, with `LD_PRELOAD` and `ZREAP_REAP` set for make and everything
   it runs; rounds of one build each, ratios paired within a round as above. The same
   build of 8 files once per case under `valgrind --tool=callgrind --trace-children=yes`:
   the user-space instructions of every process it runs (make, the compiler drivers, cc1,
   as, ld), added up; repeatable where the build's wall time moves by ±15 % between rounds.
6. **Memory.** RSS (`/proc/self/statm`) before and after making N live tracked children,
   divided by N (user-space memory only: the kernel's pidfd and epoll entries are not in
   RSS); and RSS before and after `zreap::install` in a fresh process.
";

fn write_doc(out: &Path, args: &[String], b: &Bench, secs: f64, plotted: bool) {
    let (rows, notes, errors) = (&b.rows, &b.notes, &b.errors);
    let md = out.join("benchmarks.md");
    let kept_notes = std::fs::read_to_string(&md).ok().and_then(|old| {
        let a = old.find(NOTES_BEGIN)?;
        let b = old.find(NOTES_END)?;
        (b > a).then(|| old[a..b + NOTES_END.len()].to_string())
    });
    let mut d = String::new();
    let _ = writeln!(d, "# zreap benchmarks\n");
    let _ = writeln!(
        d,
        "zreap against the raw system calls, measured side by side in one run by `zreap-bench` \
         (`bench/`). Everything above the notes section is written by the benchmark itself.\n"
    );
    let _ = writeln!(d, "## Machine\n");
    for m in machine() {
        let _ = writeln!(d, "- {m}");
    }
    let _ = writeln!(d, "\n## Command\n");
    let _ = writeln!(d, "```sh\n{}\n```\n", command_line(args));
    let _ = writeln!(d, "Run took {secs:.0} s.\n");
    let _ = writeln!(d, "## Results\n");
    let _ = writeln!(d, "Medians; ratios are against the row named in \"vs\" (the raw baseline).\n");
    d.push_str(&table(rows));
    if plotted {
        let _ = writeln!(d, "\n![spawn latency against parent size](spawn_latency.svg)\n");
        if !b.plot.is_empty() {
            let _ = writeln!(d, "`spawn_latency.svg`: median spawn + wait latency against parent size, per method.");
        }
        if !b.scale.plot.is_empty() {
            let _ = writeln!(d, "`spawn_latency.svg`: median start cost against live tracked children, per library.");
        }
    }
    let _ = writeln!(d, "\n## Targets\n");
    for r in rows.iter().filter(|r| r.target.is_some()) {
        let what = match r.met() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let shown = match (&r.value, r.ratio) {
            (Val::Ratio(_) | Val::Count(_) | Val::Na(_), _) | (_, None) => r.value.show(),
            (_, Some(x)) => format!("{x:.2}×"),
        };
        let why = r.fail.as_ref().map_or(String::new(), |f| format!(" ({f})"));
        let _ = writeln!(
            d,
            "- {what}: {} — {}: {shown}, target {}{why}",
            r.section,
            r.name,
            r.target.map_or(String::new(), Target::show)
        );
    }
    d.push_str(&b.scale.goals_md());
    if !notes.is_empty() || !errors.is_empty() {
        let _ = writeln!(d, "\n## Run notes\n");
        for n in notes {
            let _ = writeln!(d, "- {n}");
        }
        for e in errors {
            let _ = writeln!(d, "- error: {e}");
        }
    }
    let _ = writeln!(d, "\n## Method\n");
    d.push_str(METHOD_TEXT);
    d.push_str(scale::METHOD_TEXT);
    let _ = writeln!(d);
    match kept_notes {
        Some(n) => d.push_str(&n),
        None => {
            let _ = write!(d, "{NOTES_BEGIN}\n## Notes\n\n(none yet)\n{NOTES_END}");
        }
    }
    d.push('\n');
    if let Err(e) = std::fs::write(&md, d) {
        eprintln!("zreap-bench: cannot write {}: {e}", md.display());
    }
}

fn usage() -> ! {
    eprintln!("usage: zreap-bench [--quick] [--out DIR] [--only {}]", SECTIONS.join("|"));
    std::process::exit(2)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("__worker") {
        std::process::exit(workers::run(&argv[1..]));
    }
    let (mut quick, mut out, mut only) = (false, None::<PathBuf>, None::<String>);
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(it.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "--only" => {
                let name = it.next().unwrap_or_else(|| usage());
                if !SECTIONS.contains(&name.as_str()) {
                    usage();
                }
                only = Some(name.clone());
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let partial = quick || only.is_some();
    let out = out.unwrap_or_else(|| PathBuf::from(if partial { "target/zreap-bench" } else { "docs" }));
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("zreap-bench: cannot create {}: {e}", out.display());
        std::process::exit(1);
    }
    let started = Instant::now();
    let mut notes = vec![format!(
        "load average (1, 5, 15 min) at the start of the run: {} (the machine is shared with other work; \
         ratios come from interleaved runs, so slow drift affects them less than the absolute numbers)",
        loadavg()
    )];
    let p = Params::new(quick, &mut notes);
    let scale = scale::Scale::new(scale::Params::new(quick, &mut notes));
    let mut b = Bench { p, rows: Vec::new(), errors: Vec::new(), notes, plot: Vec::new(), tracked_rss: None, scale };
    let tmp = std::env::temp_dir().join(format!("zreap-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&tmp);
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    for section in SECTIONS {
        if !run(section) {
            continue;
        }
        eprintln!("zreap-bench: {section} ... ({:.0} s)", started.elapsed().as_secs_f64());
        match section {
            "spawn" => b.spawn(),
            "zfork" => b.zfork(),
            "storm" => b.storm(),
            "own-scale" => b.own_scale(),
            "shim" => b.shim(&tmp),
            "memory" => b.memory(),
            "live-scale" => b.live_scale(&tmp),
            "latency" => b.latency(&tmp),
            "syscalls" => b.syscalls(&tmp),
            _ => unreachable!(),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let plotted = if b.plot.is_empty() && b.scale.plot.is_empty() {
        false
    } else {
        match plot::spawn_latency(&out.join("spawn_latency.svg"), &b.plot, &b.scale.plot) {
            Ok(()) => true,
            Err(e) => {
                b.errors.push(format!("plot: {e}"));
                false
            }
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!("{}", table(&b.rows));
    for n in &b.notes {
        println!("note: {n}");
    }
    for e in &b.errors {
        println!("error: {e}");
    }
    write_doc(&out, &argv, &b, secs, plotted);
    println!("wrote {} in {secs:.0} s", out.join("benchmarks.md").display());
    std::process::exit(if b.errors.is_empty() { 0 } else { 1 });
}
