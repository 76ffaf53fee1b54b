//! `zreap run`: run a command under the preload shim, or as a minimal init.

use crate::init::{self, InitConfig, Mode};
use crate::locate;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;

pub struct RunConfig {
    pub reap: &'static str,
    pub pdeathsig: Option<zreap::Signal>,
    pub subreaper: bool,
    pub init: bool,
    pub group: bool,
    pub cmd: Vec<OsString>,
}

/// The environment changes for the command: the shim appended to
/// `LD_PRELOAD` and the `ZREAP_*` settings.
pub fn shim_env(shim: &OsStr, cfg: &RunConfig) -> Vec<(OsString, OsString)> {
    let preload = match std::env::var_os("LD_PRELOAD") {
        Some(old) if !old.is_empty() => {
            let mut v = old;
            v.push(":");
            v.push(shim);
            v
        }
        _ => shim.to_os_string(),
    };
    let mut env = vec![("LD_PRELOAD".into(), preload), ("ZREAP_REAP".into(), cfg.reap.into())];
    if let Some(sig) = cfg.pdeathsig {
        env.push(("ZREAP_PDEATHSIG".into(), sig.as_raw().to_string().into()));
    }
    if cfg.subreaper {
        env.push(("ZREAP_SUBREAPER".into(), "1".into()));
    }
    env
}

/// The shim's environment for `zreap init --reap REAP`; exit code 2 when
/// the shim is missing.
pub fn preload_env(reap: &'static str) -> Result<Vec<(OsString, OsString)>, i32> {
    let shim = locate::shim().map_err(|e| {
        eprintln!("zreap init: the preload shim is missing: {e}");
        2
    })?;
    let cfg = RunConfig { reap, pdeathsig: None, subreaper: false, init: true, group: false, cmd: Vec::new() };
    Ok(shim_env(shim.as_os_str(), &cfg))
}

pub fn run(cfg: RunConfig) -> i32 {
    let shim = match locate::shim() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("zreap run: the preload shim is missing: {e}");
            return 2;
        }
    };
    let env = shim_env(shim.as_os_str(), &cfg);
    // SAFETY: getpid has no preconditions.
    let pid1 = unsafe { libc::getpid() } == 1;
    if cfg.init || pid1 {
        let mode = if cfg.group { Mode::Group } else { Mode::Child };
        return init::init(&InitConfig { env, ..InitConfig::new("zreap run", mode, cfg.cmd) });
    }
    let err = std::process::Command::new(&cfg.cmd[0]).args(&cfg.cmd[1..]).envs(env).exec();
    eprintln!("zreap run: {}: {err}", cfg.cmd[0].to_string_lossy());
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}
