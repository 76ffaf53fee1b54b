//! `zreap`: find zombies and say why they exist; make a running parent reap
//! them; run any command under the preload shim or as a tiny init; show the
//! echo-server demo.
#![deny(unsafe_op_in_unsafe_fn)]

mod demo;
mod init;
mod inject;
mod locate;
mod persona;
mod procfs;
mod ps;
mod reap;
mod run;

use clap::{Parser, Subcommand, ValueEnum};
use std::ffi::OsString;

#[derive(Parser)]
#[command(
    name = "zreap",
    version,
    about = "Find zombie processes, say why they exist and reap them; run commands so they leave none"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Reap {
    /// A SIGCHLD handler the program installs is called once per exited child.
    Handler,
    /// Also reap children the program never waits for.
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum InitReap {
    /// A SIGCHLD handler CMD installs is called once per exited child.
    Handler,
    /// Also reap children CMD never waits for.
    All,
    /// No shim.
    Off,
}

/// `S:R`: two signals, R may be 0.
fn parse_rewrite(text: &str) -> Result<(i32, i32), String> {
    let (s, r) = text.split_once(':').ok_or("expected S:R")?;
    let from = zreap::Signal::from_name(s).ok_or(format!("unknown signal {s}"))?.as_raw();
    let to = if r == "0" { 0 } else { zreap::Signal::from_name(r).ok_or(format!("unknown signal {r}"))?.as_raw() };
    Ok((from, to))
}

#[derive(Subcommand)]
enum Cmd {
    /// List zombies grouped by parent, with the cause and the fix. Exit status: 0 no zombie, 1 zombies found.
    Ps {
        /// Only the zombies of this parent (or this zombie itself).
        #[arg(long)]
        pid: Option<i32>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make a running parent reap its zombies now, through ptrace (it loses their exit statuses). Exit status: 0 every requested zombie gone, 1 some remain.
    Reap {
        /// The parent whose zombies to reap.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        pid: i32,
        /// Only these zombies (children of PID); default: every zombie child of PID.
        #[arg(value_name = "ZOMBIE", value_parser = clap::value_parser!(i32).range(1..))]
        zombies: Vec<i32>,
        /// Go ahead despite a refusal: PID 1, zreap itself, a parent in state D, traced or stopped, or one that collects its children itself.
        #[arg(long)]
        force: bool,
        /// Say what would be done, touch nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run CMD with the preload shim (libzreap_preload.so) injected, or as a minimal init.
    Run {
        /// Which children the shim reaps.
        #[arg(long, value_enum, default_value = "handler")]
        reap: Reap,
        /// Signal every child of CMD gets when CMD dies (name or number).
        #[arg(long, value_name = "SIG")]
        pdeathsig: Option<zreap::Signal>,
        /// CMD adopts its orphaned descendants and reaps them.
        #[arg(long)]
        subreaper: bool,
        /// Act as a minimal init (also when zreap is PID 1): spawn CMD, forward signals, reap every child.
        #[arg(long)]
        init: bool,
        /// With --init: run CMD in its own process group and forward signals to the whole group.
        #[arg(short = 'g')]
        group: bool,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
        cmd: Vec<OsString>,
    },
    /// A container init: start CMD, forward every signal it can catch, reap every child, exit with CMD's status (docs/init.md).
    Init {
        /// CMD in its own process group; signals go to the whole group.
        #[arg(short = 'g', long, conflicts_with_all = ["setsid", "single"])]
        group: bool,
        /// CMD stays in the init's process group; signals go to CMD only; TSTP, TTOU and TTIN suspend the init too.
        #[arg(long, conflicts_with = "setsid")]
        single: bool,
        /// CMD in a new session with the init's terminal; signals go to its group; TSTP, TTOU and TTIN are forwarded as STOP and suspend the init too.
        #[arg(long)]
        setsid: bool,
        /// Accepted for tini: the init is always a child subreaper.
        #[arg(short = 's', long)]
        subreaper: bool,
        /// The init gets SIG when its own parent dies, and forwards it.
        #[arg(short = 'p', long, value_name = "SIG")]
        pdeathsig: Option<zreap::Signal>,
        /// Report CMD's exit code CODE as 0 (repeatable).
        #[arg(short = 'e', value_name = "CODE", value_parser = clap::value_parser!(i32).range(0..=255))]
        remap: Vec<i32>,
        /// Forward signal S as R; R = 0 drops S (repeatable; names or numbers).
        #[arg(short = 'r', long, value_name = "S:R", value_parser = parse_rewrite)]
        rewrite: Vec<(i32, i32)>,
        /// When CMD exits, SIGTERM what is left of its group or session, SIGKILL after --grace.
        #[arg(long)]
        kill_group: bool,
        /// Seconds between SIGTERM and SIGKILL with --kill-group.
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        grace: f64,
        /// One line on stderr per orphan the init reaps.
        #[arg(short = 'w', long)]
        warn_reaped: bool,
        /// Debug lines on stderr (repeatable).
        #[arg(short = 'v', action = clap::ArgAction::Count)]
        verbose: u8,
        /// No command: sleep until SIGINT or SIGTERM, then exit 0.
        #[arg(short = 'P', long, conflicts_with = "cmd")]
        pause: bool,
        /// The shim injected into CMD: which children it reaps, or off.
        #[arg(long, value_enum, default_value = "handler")]
        reap: InitReap,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, value_name = "CMD", required_unless_present = "pause")]
        cmd: Vec<OsString>,
    },
    /// The echo-server demo: wait()-once handler vs the same under the shim vs zreap_install(0).
    Demo {
        /// Rounds of 50 connections.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rounds: u32,
    },
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().map(std::path::Path::new).and_then(|p| p.file_name()).and_then(|n| n.to_str());
    if let Some(code) = argv0.and_then(|name| persona::run(name, args.clone())) {
        std::process::exit(code);
    }
    // clap exits 2 on usage errors (0 for --help / --version).
    let cli = Cli::parse_from(args);
    let code = match cli.command {
        Cmd::Ps { pid, json } => ps::run(pid, json),
        Cmd::Reap { pid, zombies, force, dry_run } => reap::run(reap::ReapConfig { pid, zombies, force, dry_run }),
        Cmd::Run { reap, pdeathsig, subreaper, init, group, cmd } => run::run(run::RunConfig {
            reap: match reap {
                Reap::Handler => "handler",
                Reap::All => "all",
            },
            pdeathsig,
            subreaper,
            init,
            group,
            cmd,
        }),
        Cmd::Init {
            group,
            single,
            setsid,
            subreaper: _,
            pdeathsig,
            remap,
            rewrite,
            kill_group,
            grace,
            warn_reaped,
            verbose,
            pause,
            reap,
            cmd,
        } => {
            let mode = if group {
                init::Mode::Group
            } else if setsid {
                init::Mode::Setsid
            } else if single {
                init::Mode::Single
            } else {
                init::Mode::Child
            };
            // The job-control defaults of the mode; later -r wins.
            let mut rewrites = init::job_control_rewrites(mode);
            rewrites.extend(rewrite);
            let shim = match reap {
                InitReap::Off => Ok(Vec::new()),
                InitReap::Handler => run::preload_env("handler"),
                InitReap::All => run::preload_env("all"),
            };
            match shim {
                Err(code) => code,
                Ok(env) => init::init(&init::InitConfig {
                    name: "zreap init".into(),
                    mode,
                    env,
                    exec_failure: init::shell_exec_failure,
                    parent_death: pdeathsig,
                    remap,
                    rewrite: rewrites,
                    kill_group,
                    grace: std::time::Duration::from_secs_f64(grace.clamp(0.0, 1e6)),
                    warn_reaped,
                    verbose,
                    cmd: if pause { Vec::new() } else { cmd },
                }),
            }
        }
        Cmd::Demo { rounds } => demo::run(rounds as usize),
    };
    std::process::exit(code);
}
