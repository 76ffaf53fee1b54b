//! `zreap`: find zombies and say why they exist; make a running parent reap
//! them; run any command under the preload shim or as a tiny init; show the
//! echo-server demo.
#![deny(unsafe_op_in_unsafe_fn)]

mod demo;
mod init;
mod inject;
mod locate;
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
    /// The echo-server demo: wait()-once handler vs the same under the shim vs zreap_install(0).
    Demo {
        /// Rounds of 50 connections.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rounds: u32,
    },
}

fn main() {
    // clap exits 2 on usage errors (0 for --help / --version).
    let cli = Cli::parse();
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
        Cmd::Demo { rounds } => demo::run(rounds as usize),
    };
    std::process::exit(code);
}
