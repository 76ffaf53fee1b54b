//! Section 5, the shim's cost per process: what `LD_PRELOAD=libzreap_preload.so`
//! adds over an empty preloaded `.so`, in instructions (callgrind: repeatable
//! on a shared machine) and in wall time, and in a real `make -j2` build (in
//! wall time, and in instructions of every process it runs).

use super::{median, Bench, Row, Target, Val};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The preloads compared, in table order: none, an empty `.so`, the shim's two modes.
const PRELOADS: [&str; 4] = ["none", "empty", "handler", "all"];
/// The wall-time rows: [`PRELOADS`], the control "thread" (no preload, a
/// second thread that sleeps throughout in the host) and "all-privileged".
/// Run by root, every case but the last runs as an unprivileged user (uid
/// and gid 65534): a process that can change its credentials gets a pthread
/// for the shim's reaper (preload/src/bare.rs), and "all-privileged" is that.
const WALL_CASES: [&str; 6] = ["none", "empty", "thread", "handler", "all", "all-privileged"];

/// The user and group the wall-time cases run as when the bench runs as root.
const UNPRIVILEGED: u32 = 65534;

/// The tools the section builds in its temporary directory.
struct Tools {
    forkexec: PathBuf,
    tiny: PathBuf,
    empty: PathBuf,
    shim: PathBuf,
}

impl Tools {
    /// `cmd` with the environment of `preload`. Every case gets the same
    /// environment size (ZREAP_REAP is set in each, and ZREAP_BENCH_PAD fills
    /// up to the longest): the environment sits at the top of the stack, and
    /// where a page boundary falls under the first frames changes the page
    /// faults of every fork.
    fn env(&self, cmd: &mut Command, preload: &str) {
        let all = matches!(preload, "all" | "all-privileged");
        let reap = if all { "all" } else { "handler" };
        let library = match preload {
            "empty" => Some(&self.empty),
            "handler" | "all" | "all-privileged" => Some(&self.shim),
            _ => None,
        };
        cmd.env_remove("LD_PRELOAD").env("ZREAP_REAP", reap);
        let mut size = reap.len();
        if let Some(library) = library {
            cmd.env("LD_PRELOAD", library);
            size += "LD_PRELOAD=".len() + library.as_os_str().len() + 1;
        }
        let longest =
            "handler".len() + "LD_PRELOAD=".len() + self.empty.as_os_str().len().max(self.shim.as_os_str().len()) + 1;
        cmd.env("ZREAP_BENCH_PAD", "x".repeat(longest - size));
    }
}

impl Bench {
    pub(crate) fn shim(&mut self, tmp: &Path) {
        let tools = match build_tools(tmp) {
            Ok(t) => t,
            Err(e) => {
                self.rows.push(Row::new("5. shim", "shim rows", Val::Na(format!("not available: {e}"))));
                return;
            }
        };
        self.shim_instructions(&tools);
        self.shim_wall(&tools);
        self.shim_make(&tools, tmp);
        self.shim_shell(&tools);
        self.shim_make_instructions(&tools, tmp);
    }

    /// Instructions (user space, callgrind) of one `/bin/true` start, which
    /// loads the preload; and of the parent's side of fork+execve+waitpid of
    /// the tiny static child (the slope between N and 2N iterations).
    fn shim_instructions(&mut self, tools: &Tools) {
        let section = "5. shim: instructions (callgrind, user space)";
        if !Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success()) {
            self.rows.push(Row::new(section, "instructions", Val::Na("not available: no valgrind".into())));
            return;
        }
        let n = 100u64;
        let mut start = HashMap::new();
        let mut per_child = HashMap::new();
        for preload in PRELOADS {
            let count = |args: &[&Path]| -> Result<u64, String> {
                let mut cmd = Command::new("valgrind");
                cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"]).args(args);
                tools.env(&mut cmd, preload);
                callgrind_total(&mut cmd)
            };
            let n_arg = PathBuf::from(n.to_string());
            let n2_arg = PathBuf::from((2 * n).to_string());
            start.insert(preload, count(&[Path::new("/bin/true")]));
            let one = count(&[&tools.forkexec, &n_arg, &tools.tiny]);
            let two = count(&[&tools.forkexec, &n2_arg, &tools.tiny]);
            per_child.insert(
                preload,
                match (one, two) {
                    (Ok(a), Ok(b)) => Ok(b.saturating_sub(a) / n),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                },
            );
        }
        for (what, results, target) in [
            ("one /bin/true start (loads the preload)", &start, true),
            ("parent, per fork+execve+waitpid of the tiny static child", &per_child, false),
        ] {
            let empty = results.get("empty").and_then(|r| r.as_ref().ok()).map(|&v| v as f64);
            for preload in PRELOADS {
                let value = self.counted(&format!("shim instructions ({preload})"), &results[preload]);
                let mut r = Row::new(section, &format!("{what}: {}", label(preload)), value).vs("empty .so", empty);
                if target && matches!(preload, "handler" | "all") {
                    r = r.target(Target::AtMost(1.05));
                }
                self.rows.push(r);
            }
        }
    }

    /// Wall time and page faults of fork+execve+waitpid loops of the tiny
    /// static child, interleaved runs, median.
    fn shim_wall(&mut self, tools: &Tools) {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let iters = self.p.shim_iters;
        // Many short rounds, each running every case once (in a rotating
        // order), and ratios taken within a round: the differences sought are
        // a few percent, on a shared machine whose speed drifts between rounds.
        let reps = 2 * self.p.shim_reps + 1;
        let section = format!("5. shim: {iters} × fork+execve(tiny static child)+waitpid in C");
        let mut times: Times = HashMap::new();
        let mut faults: HashMap<&str, Vec<u64>> = HashMap::new();
        let mut maps: HashMap<&str, u64> = HashMap::new();
        let mut failed: HashMap<&str, String> = HashMap::new();
        if !root {
            failed.insert("all-privileged", "the bench runs as root only".into());
        }
        for rep in 0..reps {
            for k in 0..WALL_CASES.len() {
                let preload = WALL_CASES[(k + rep) % WALL_CASES.len()];
                if failed.contains_key(preload) {
                    continue;
                }
                let mut cmd = Command::new(&tools.forkexec);
                cmd.arg(iters.to_string()).arg(&tools.tiny);
                if preload == "thread" {
                    cmd.arg("thread");
                }
                if root && preload != "all-privileged" {
                    cmd.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
                }
                tools.env(&mut cmd, preload);
                match cmd.output() {
                    Ok(o) if o.status.success() => {
                        let text = String::from_utf8_lossy(&o.stdout);
                        let field = |name: &str| {
                            text.split_whitespace().find_map(|t| t.strip_prefix(name)?.parse::<u64>().ok())
                        };
                        match (field("ns="), field("faults=")) {
                            (Some(ns), Some(n)) => {
                                times.entry(preload).or_default().push((rep, ns));
                                faults.entry(preload).or_default().push(n);
                                if let Some(m) = field("maps=") {
                                    maps.insert(preload, m);
                                }
                            }
                            _ => {
                                failed.insert(preload, format!("unexpected output {text:?}"));
                            }
                        }
                    }
                    Ok(o) => {
                        let err = String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").to_string();
                        failed.insert(preload, format!("run failed ({}): {err}", o.status));
                    }
                    Err(e) => {
                        failed.insert(preload, format!("cannot run: {e}"));
                    }
                }
            }
        }
        let vs_empty: HashMap<&str, Option<f64>> =
            WALL_CASES.iter().map(|&p| (p, paired_ratio(&times, p, "empty"))).collect();
        let all_vs_handler = paired_ratio(&times, "all", "handler");
        let all_vs_thread = paired_ratio(&times, "all", "thread");
        let med: HashMap<&str, Option<f64>> = WALL_CASES.iter().map(|&p| (p, median_time(&times, p))).collect();
        let faults_per_child: HashMap<&str, Option<f64>> = WALL_CASES
            .iter()
            .map(|&p| (p, faults.get_mut(p).and_then(|v| median(v)).map(|f| f / iters as f64)))
            .collect();
        let user = |preload: &str| if root && preload != "all-privileged" { ", as uid 65534" } else { "" };
        for preload in WALL_CASES {
            let value = match (failed.get(preload), med[preload]) {
                (Some(e), _) => Val::Na(format!("not available: {e}")),
                (None, Some(m)) => Val::Ns(m),
                (None, None) => Val::Na("not available".into()),
            };
            let mut r = Row::new(&section, &format!("{}{} (runs={reps})", label(preload), user(preload)), value)
                .paired("empty .so, same round", vs_empty[preload]);
            if matches!(preload, "handler" | "all") {
                r = r.target(Target::AtMost(1.05));
            }
            self.rows.push(r);
        }
        let faults_section = "5. shim: page faults per child of that loop (parent and child, getrusage)";
        for preload in WALL_CASES {
            let value = match (failed.get(preload), faults_per_child[preload]) {
                (None, Some(f)) => Val::Per(f),
                _ => Val::Na("not available".into()),
            };
            self.rows.push(
                Row::new(faults_section, &format!("{}{}", label(preload), user(preload)), value)
                    .vs("empty .so", faults_per_child["empty"]),
            );
        }
        // The same in every run of a case: what a fork copies and the child's
        // exec tears down, which is what `all`'s core and thread add to.
        let maps_section = "5. shim: mappings of that loop's process (/proc/self/maps after the loop)";
        for preload in WALL_CASES {
            let value = match (failed.get(preload), maps.get(preload)) {
                (None, Some(&m)) => Val::Count(m),
                _ => Val::Na("not available".into()),
            };
            self.rows.push(
                Row::new(maps_section, &format!("{}{}", label(preload), user(preload)), value)
                    .vs("empty .so", maps.get("empty").map(|&m| m as f64)),
            );
        }
        let all = match med["all"] {
            Some(a) if !failed.contains_key("all") => Val::Ns(a),
            _ => Val::Na("not available".into()),
        };
        self.rows.push(
            Row::new(&section, &format!("{}, against handler (runs={reps})", label("all")), all.clone())
                .paired("ZREAP_REAP=handler, same round", all_vs_handler)
                .target(Target::AtMost(1.05)),
        );
        // What is left of `all`'s cost once a second thread's is accounted for.
        self.rows.push(
            Row::new(&section, &format!("{}, against the control (runs={reps})", label("all")), all)
                .paired("a second thread, no preload, same round", all_vs_thread),
        );
    }

    /// `make -j2` of a generated C project, without the shim and under it
    /// (make and everything it runs), in rounds; ratios paired within a round.
    fn shim_make(&mut self, tools: &Tools, tmp: &Path) {
        let quick = self.p.shim_reps < 2;
        let (files, reps) = if quick { (40, 1) } else { (300, 7) };
        let section = format!("5. shim: make -j2 of {files} generated C files");
        let dir = tmp.join("make-project");
        if let Err(e) = generate_project(&dir, files) {
            self.rows.push(Row::new(&section, "make -j2", Val::Na(format!("not available: {e}"))));
            return;
        }
        let clean = || match Command::new("make").args(["-s", "clean"]).current_dir(&dir).output() {
            Ok(o) if o.status.success() => Ok(()),
            _ => Err("make clean failed (is make installed?)".to_string()),
        };
        let make = || {
            let mut cmd = Command::new("make");
            cmd.args(["-s", "-j2"]).current_dir(&dir);
            cmd
        };
        let (times, failed) = timed_rounds(tools, &MAKE_MODES, reps, clean, make);
        self.push_wall_rows(&section, &MAKE_MODES, reps, (&times, &failed), ("none", 1.03));
    }

    /// A bash loop that runs the tiny static child in the foreground, as a
    /// script does: bash blocks SIGCHLD around its wait for each command (in
    /// the shim's first releases each such wait slept 100 ms).
    fn shim_shell(&mut self, tools: &Tools) {
        let quick = self.p.shim_reps < 2;
        let (commands, reps) = if quick { (50, 1) } else { (500, 7) };
        let section = format!("5. shim: bash running {commands} foreground commands (the tiny static child)");
        let script = format!("for ((i = 0; i < {commands}; i++)); do \"$0\"; done");
        let bash = || {
            let mut cmd = Command::new("bash");
            cmd.args(["-c", &script]).arg(&tools.tiny);
            cmd
        };
        let (times, failed) = timed_rounds(tools, &PRELOADS, reps, || Ok(()), bash);
        self.push_wall_rows(&section, &PRELOADS, reps, (&times, &failed), ("empty", 1.05));
    }

    /// One row per mode of [`timed_rounds`]: its median time, paired with
    /// `base` in the same round, against `target` for the shim's modes.
    fn push_wall_rows(
        &mut self,
        section: &str,
        modes: &[&str],
        reps: usize,
        (times, failed): (&Times, &HashMap<&str, String>),
        (base, target): (&str, f64),
    ) {
        for &mode in modes {
            let value = match (failed.get(mode), median_time(times, mode)) {
                (Some(e), _) => Val::Na(format!("not available: {e}")),
                (None, Some(m)) => Val::Ns(m),
                (None, None) => Val::Na("not available".into()),
            };
            let mut r = Row::new(section, &format!("{} (runs={reps})", label(mode)), value)
                .paired(&format!("{}, same round", label(base)), paired_ratio(times, mode, base));
            if matches!(mode, "handler" | "all") {
                r = r.target(Target::AtMost(target));
            }
            self.rows.push(r);
        }
    }

    /// A callgrind count as a table value; a failure goes to the run's errors.
    fn counted(&mut self, what: &str, result: &Result<u64, String>) -> Val {
        match result {
            Ok(v) => Val::Count(*v),
            Err(e) => {
                self.errors.push(format!("{what}: {e}"));
                Val::Na("error".into())
            }
        }
    }

    /// Instructions (user space, callgrind) of every process of a `make -j2`
    /// of a small generated C project: make, the compiler drivers, cc1, as
    /// and ld, without the shim and under it. Repeatable where the wall time
    /// of a build is not (it moves by ±15 % between rounds on a shared
    /// machine); the compiler's own work dominates, as in any real build.
    fn shim_make_instructions(&mut self, tools: &Tools, tmp: &Path) {
        let files = if self.p.shim_reps < 2 { 2 } else { 8 };
        let section =
            format!("5. shim: instructions of make -j2 of {files} generated C files (callgrind, every process)");
        if !Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success()) {
            self.rows.push(Row::new(&section, "instructions", Val::Na("not available: no valgrind".into())));
            return;
        }
        let dir = tmp.join("make-project-callgrind");
        if let Err(e) = generate_project(&dir, files) {
            self.rows.push(Row::new(&section, "instructions", Val::Na(format!("not available: {e}"))));
            return;
        }
        let modes = ["none", "handler", "all"];
        let mut counts: HashMap<&str, Result<u64, String>> = HashMap::new();
        for mode in modes {
            let clean = Command::new("make").args(["-s", "clean"]).current_dir(&dir).output();
            if !clean.is_ok_and(|o| o.status.success()) {
                counts.insert(mode, Err("make clean failed (is make installed?)".into()));
                continue;
            }
            let mut cmd = Command::new("valgrind");
            cmd.args(["--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=/dev/null"])
                .args(["make", "-s", "-j2"])
                .current_dir(&dir);
            tools.env(&mut cmd, mode);
            counts.insert(mode, callgrind_total(&mut cmd));
        }
        let none = counts.get("none").and_then(|r| r.as_ref().ok()).map(|&v| v as f64);
        for mode in modes {
            let value = self.counted(&format!("make instructions ({mode})"), &counts[mode]);
            let mut r = Row::new(&section, label(mode), value).vs("no preload", none);
            if mode != "none" {
                r = r.target(Target::AtMost(1.03));
            }
            self.rows.push(r);
        }
    }
}

fn label(preload: &str) -> &'static str {
    match preload {
        "none" => "no preload",
        "thread" => "no preload, a second thread asleep in the host (control)",
        "empty" => "empty .so preloaded",
        "handler" => "shim, ZREAP_REAP=handler",
        "all-privileged" => "shim, ZREAP_REAP=all, as root (the reaper is a pthread)",
        _ => "shim, ZREAP_REAP=all",
    }
}

/// Runs a callgrind command and adds up the "Collected : N" lines of its
/// stderr: one per process it traced.
fn callgrind_total(cmd: &mut Command) -> Result<u64, String> {
    let out = cmd.output().map_err(|e| format!("valgrind: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("valgrind failed ({}): {}", out.status, err.lines().last().unwrap_or("")));
    }
    let counts: Vec<u64> =
        err.lines().filter_map(|l| l.split_once("Collected :").and_then(|(_, n)| n.trim().parse().ok())).collect();
    if counts.is_empty() {
        return Err(format!("no instruction count in valgrind's output: {err:?}"));
    }
    Ok(counts.iter().sum())
}

/// Per case: (round, nanoseconds) of each run.
type Times<'a> = HashMap<&'a str, Vec<(usize, u64)>>;

/// The make rows' preloads: none and the shim's two modes.
const MAKE_MODES: [&str; 3] = ["none", "handler", "all"];

/// Runs `command()` under each of `modes` (see [`PRELOADS`]) in `reps`
/// rounds, each in a rotating order, after an untimed `setup()`: the wall
/// time of each run by round, and why a mode failed (it is not run again).
fn timed_rounds<'a>(
    tools: &Tools,
    modes: &[&'a str],
    reps: usize,
    setup: impl Fn() -> Result<(), String>,
    command: impl Fn() -> Command,
) -> (Times<'a>, HashMap<&'a str, String>) {
    let mut times: Times = HashMap::new();
    let mut failed: HashMap<&str, String> = HashMap::new();
    for rep in 0..reps {
        for k in 0..modes.len() {
            let mode = modes[(k + rep) % modes.len()];
            if failed.contains_key(mode) {
                continue;
            }
            if let Err(e) = setup() {
                failed.insert(mode, e);
                continue;
            }
            let mut cmd = command();
            tools.env(&mut cmd, mode);
            let t0 = Instant::now();
            match cmd.output() {
                Ok(o) if o.status.success() => {
                    times.entry(mode).or_default().push((rep, t0.elapsed().as_nanos() as u64));
                }
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").to_string();
                    failed.insert(mode, format!("failed ({}): {err}", o.status));
                }
                Err(e) => {
                    failed.insert(mode, format!("cannot run: {e}"));
                }
            }
        }
    }
    (times, failed)
}

/// The median run time of `case`.
fn median_time(times: &Times, case: &str) -> Option<f64> {
    median(&mut times.get(case)?.iter().map(|&(_, ns)| ns).collect::<Vec<_>>())
}

/// The median over rounds of `case`'s run time against `base`'s in the same
/// round: the machine's speed drifts between rounds more than within one.
fn paired_ratio(times: &Times, case: &str, base: &str) -> Option<f64> {
    let (case, base) = (times.get(case)?, times.get(base)?);
    let ratios: Vec<f64> = case
        .iter()
        .filter_map(|&(round, c)| base.iter().find(|&&(r, _)| r == round).map(|&(_, b)| c as f64 / b as f64))
        .collect();
    crate::median_f64(&ratios)
}

/// Compiles the host loop, the tiny static child and the empty preload into
/// `dir`, and finds the shim.
fn build_tools(dir: &Path) -> Result<Tools, String> {
    let shim = std::env::var_os("ZREAP_PRELOAD")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("libzreap_preload.so"))));
    let shim = shim.ok_or("no path for libzreap_preload.so")?;
    if !shim.exists() {
        return Err(format!("{} missing", shim.display()));
    }
    shim_exports_interposers(&shim)?;
    let forkexec =
        compile(dir, "forkexec.c", include_str!("../forkexec.c"), "forkexec", &["-O2", "-std=c99", "-pthread"])?;
    let tiny = compile(dir, "tiny.c", include_str!("../shim/tiny.c"), "tiny", &["-O2", "-nostdlib", "-static"])?;
    let empty = compile(dir, "empty.c", include_str!("../shim/empty.c"), "empty.so", &["-O2", "-shared", "-fPIC"])?;
    Ok(Tools { forkexec, tiny, empty, shim })
}

/// Writes `source` to `dir/name` and compiles it with cc and `flags`.
fn compile(dir: &Path, name: &str, source: &str, output: &str, flags: &[&str]) -> Result<PathBuf, String> {
    let src = dir.join(name);
    let bin = dir.join(output);
    std::fs::write(&src, source).map_err(|e| format!("write {}: {e}", src.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc).args(flags).arg("-o").arg(&bin).arg(&src).output().map_err(|e| format!("{cc}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cc} {name} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(bin)
}

/// The shim is there for real when its .so defines at least one of the libc
/// functions it must interpose (the crate may still be a placeholder).
fn shim_exports_interposers(so: &Path) -> Result<(), String> {
    let out = match Command::new("nm").args(["-D", "--defined-only"]).arg(so).output() {
        Ok(o) if o.status.success() => o,
        // No nm: assume it is real; a failing run is reported anyway.
        _ => return Ok(()),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let wanted = ["sigaction", "signal", "fork", "waitpid", "wait", "wait4", "waitid", "sigprocmask"];
    if text.lines().any(|l| l.split_whitespace().last().is_some_and(|sym| wanted.contains(&sym))) {
        Ok(())
    } else {
        Err(format!("{} defines none of {wanted:?} (placeholder?)", so.display()))
    }
}

/// A C project of `files` small translation units and a Makefile that
/// compiles each (`cc -O1 -c`) and links them into one program.
fn generate_project(dir: &Path, files: usize) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut objs = String::new();
    let mut main = String::from("#include <stdio.h>\n");
    for i in 0..files {
        let mut c = String::new();
        let _ = writeln!(c, "#include <string.h>\n#include <stdlib.h>\nstruct s{i} {{ int a[16]; char name[32]; }};");
        let _ = writeln!(
            c,
            "static int step{i}(struct s{i} *s, int k) {{ for (int j = 0; j < 16; j++) s->a[j] += j * k + {i}; \
             return s->a[k & 15]; }}"
        );
        let _ = writeln!(
            c,
            "int unit{i}(int k) {{ struct s{i} s; memset(&s, 0, sizeof s); strcpy(s.name, \"unit{i}\"); \
             int t = 0; for (int r = 0; r < k; r++) t += step{i}(&s, r); return t + (int)strlen(s.name); }}"
        );
        std::fs::write(dir.join(format!("u{i}.c")), c).map_err(io)?;
        let _ = write!(objs, " u{i}.o");
        let _ = writeln!(main, "int unit{i}(int);");
    }
    main.push_str("int main(void) { long t = 0;\n");
    for i in 0..files {
        let _ = writeln!(main, "  t += unit{i}(3);");
    }
    main.push_str("  printf(\"%ld\\n\", t); return 0; }\n");
    std::fs::write(dir.join("main.c"), main).map_err(io)?;
    let makefile = format!(
        "OBJS = main.o{objs}\nprog: $(OBJS)\n\tcc -o $@ $(OBJS)\n%.o: %.c\n\tcc -O1 -c $< -o $@\n\
         clean:\n\trm -f prog $(OBJS)\n.PHONY: clean\n"
    );
    std::fs::write(dir.join("Makefile"), makefile).map_err(io)
}
