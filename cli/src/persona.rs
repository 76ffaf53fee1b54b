//! Drop-in personalities: invoked as `tini`, `dumb-init` or `catatonit` (a
//! symlink or hard link), zreap takes that tool's command line and
//! environment and runs `zreap init` with it. Usage errors exit 1, as the
//! peers do. The shim is not injected (the peers do not have one).

use crate::init::{self, InitConfig, Mode};
use clap::{ArgAction, Parser};
use std::ffi::OsString;

#[derive(Parser)]
#[command(name = "tini", version, about = "tini personality of zreap init")]
struct Tini {
    /// Show the license and exit.
    #[arg(short = 'l')]
    license: bool,
    /// Register as a process subreaper (always on; so is TINI_SUBREAPER).
    #[arg(short = 's')]
    _subreaper: bool,
    /// Parent-death signal of the init.
    #[arg(short = 'p', value_name = "SIG")]
    pdeathsig: Option<zreap::Signal>,
    /// Verbosity (repeatable).
    #[arg(short = 'v', action = ArgAction::Count)]
    verbose: u8,
    /// Warn about reaped zombies.
    #[arg(short = 'w')]
    warn: bool,
    /// Signal the child's process group.
    #[arg(short = 'g')]
    group: bool,
    /// Remap exit code to 0 (repeatable).
    #[arg(short = 'e', value_name = "EXIT_CODE", value_parser = clap::value_parser!(i32).range(0..=255))]
    remap: Vec<i32>,
    #[arg(required_unless_present = "license", trailing_var_arg = true, value_name = "PROGRAM")]
    cmd: Vec<OsString>,
}

#[derive(Parser)]
#[command(name = "dumb-init", version, about = "dumb-init personality of zreap init")]
struct DumbInit {
    /// Run in single-child mode: no setsid, signals to the child only.
    #[arg(short = 'c', long)]
    single_child: bool,
    /// Rewrite received signal s to new signal r before proxying (s:r; r = 0 drops).
    #[arg(short = 'r', long, value_name = "s:r", value_parser = crate::parse_rewrite)]
    rewrite: Vec<(i32, i32)>,
    /// Print debugging information to stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    cmd: Vec<OsString>,
}

#[derive(Parser)]
#[command(name = "catatonit", version, about = "catatonit personality of zreap init")]
struct Catatonit {
    /// Forward signals to the child's process group.
    #[arg(short = 'g')]
    group: bool,
    /// Pause: no program, wait for SIGINT or SIGTERM.
    #[arg(short = 'P', conflicts_with = "cmd")]
    pause: bool,
    #[arg(trailing_var_arg = true, value_name = "PROGRAM", required_unless_present = "pause")]
    cmd: Vec<OsString>,
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Parses with `P`; help and version exit 0, usage errors exit 1.
fn parse<P: Parser>(args: Vec<OsString>) -> P {
    P::try_parse_from(args).unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 })
    })
}

/// The exit code when `argv0` names a personality, None otherwise.
pub fn run(argv0: &str, args: Vec<OsString>) -> Option<i32> {
    let cfg = match argv0 {
        "tini" => {
            let t: Tini = parse(args);
            // TINI_KILL_PROCESS_GROUP is tini's -g.
            let group = t.group || env_set("TINI_KILL_PROCESS_GROUP");
            let verbose = std::env::var("TINI_VERBOSITY").ok().and_then(|v| v.parse().ok()).unwrap_or(t.verbose);
            if t.license {
                println!("zreap (tini personality): MIT OR Apache-2.0");
                return Some(0);
            }
            InitConfig {
                parent_death: t.pdeathsig,
                // tini: 127 not found, 126 not permitted, 1 otherwise.
                exec_failure: |errno| match errno {
                    libc::ENOENT => 127,
                    libc::EACCES => 126,
                    _ => 1,
                },
                remap: t.remap,
                warn_reaped: t.warn,
                verbose,
                ..InitConfig::new("[tini]", if group { Mode::Group } else { Mode::Child }, t.cmd)
            }
        }
        "dumb-init" => {
            let d: DumbInit = parse(args);
            let setsid = !d.single_child && std::env::var("DUMB_INIT_SETSID").map_or(true, |v| v != "0");
            let mode = if setsid { Mode::Setsid } else { Mode::Single };
            let mut rewrite = init::job_control_rewrites(mode);
            rewrite.extend(d.rewrite);
            let verbose = u8::from(d.verbose || std::env::var("DUMB_INIT_DEBUG").is_ok_and(|v| v == "1"));
            InitConfig {
                rewrite,
                verbose,
                // dumb-init's child exits 2 when execvp fails.
                exec_failure: |_| 2,
                ..InitConfig::new("[dumb-init]", mode, d.cmd)
            }
        }
        "catatonit" => {
            let c: Catatonit = parse(args);
            let cmd = if c.pause { Vec::new() } else { c.cmd };
            let mut cfg = InitConfig::new("catatonit", if c.group { Mode::Group } else { Mode::Child }, cmd);
            // catatonit ignores TSTP as well as TTIN and TTOU.
            cfg.rewrite.push((libc::SIGTSTP, 0));
            cfg
        }
        _ => return None,
    };
    Some(init::init(&cfg))
}
