//! [`Command`]: a builder like `std::process::Command` whose children are
//! tracked by zreap (exactly-once exits, parent-death signals that hold, no
//! copy of the parent's memory).

use super::{spawn, SpawnFlags, SpawnOptions};
use crate::Signal;
use libc::pid_t;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::ExitStatus;

/// A program to start as a tracked child. Like `std::process::Command`: the
/// program is looked up in `$PATH` when it has no '/', the environment and
/// the standard fds are inherited unless set.
///
/// ```
/// use zreap::{Command, Signal};
/// let mut child = Command::new("sh")
///     .args(["-c", "exit $CODE"])
///     .env("CODE", "9")
///     .pdeathsig(Signal::TERM)
///     .current_dir("/")
///     .spawn()
///     .unwrap();
/// assert_eq!(child.wait().unwrap().code(), Some(9));
/// ```
#[derive(Debug)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    /// Changes to the inherited environment, in order; `None` value: removed.
    env: Vec<(OsString, Option<OsString>)>,
    env_clear: bool,
    cwd: Option<OsString>,
    stdio: [Option<OwnedFd>; 3],
    flags: SpawnFlags,
    pdeathsig: Option<Signal>,
}

impl Command {
    /// A command for `program`, with no arguments beyond its name.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            stdio: [None, None, None],
            flags: SpawnFlags::SEARCH_PATH,
            pdeathsig: None,
        }
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Command {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment (then the variables set with
    /// [`Command::env`]).
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().as_os_str().to_owned());
        self
    }

    /// The child's standard input (a `File`, one end of a pipe, ...).
    pub fn stdin(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[0] = Some(fd.into());
        self
    }

    /// The child's standard output.
    pub fn stdout(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[1] = Some(fd.into());
        self
    }

    /// The child's standard error.
    pub fn stderr(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[2] = Some(fd.into());
        self
    }

    /// The signal the child gets when this process dies (even if the thread
    /// that spawned it ended long before).
    pub fn pdeathsig(&mut self, signal: Signal) -> &mut Command {
        self.pdeathsig = Some(signal);
        self
    }

    /// Starts the child in a new session (`setsid`).
    pub fn setsid(&mut self) -> &mut Command {
        self.flags |= SpawnFlags::SETSID;
        self
    }

    /// Starts the child in a new process group of its own.
    pub fn process_group(&mut self) -> &mut Command {
        self.flags |= SpawnFlags::SETPGROUP;
        self
    }

    /// Starts the child. Errors are the child's (`ENOENT`, `EACCES`, a failed
    /// `chdir` ...), with no child left behind; `EINVAL` for a string with a
    /// NUL byte.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let program = c_string(&self.program)?;
        let mut argv = vec![program.clone()];
        for arg in &self.args {
            argv.push(c_string(arg)?);
        }
        let env = self.environment()?;
        let env_refs: Option<Vec<&std::ffi::CStr>> = env.as_ref().map(|e| e.iter().map(CString::as_c_str).collect());
        let cwd = self.cwd.as_ref().map(c_string).transpose()?;
        let [stdin, stdout, stderr] = self.stdio.each_ref().map(|fd| fd.as_ref().map(AsFd::as_fd));
        let options =
            SpawnOptions { flags: self.flags, pdeathsig: self.pdeathsig, cwd: cwd.as_deref(), stdin, stdout, stderr };
        let pid = spawn(&program, &argv, env_refs.as_deref(), &options)?;
        Ok(Child { pid })
    }

    /// The child's whole environment, or None to inherit it unchanged.
    fn environment(&self) -> io::Result<Option<Vec<CString>>> {
        if self.env.is_empty() && !self.env_clear {
            return Ok(None);
        }
        let mut vars: Vec<(OsString, OsString)> =
            if self.env_clear { Vec::new() } else { std::env::vars_os().collect() };
        for (key, value) in &self.env {
            vars.retain(|(k, _)| k != key);
            if let Some(value) = value {
                vars.push((key.clone(), value.clone()));
            }
        }
        vars.into_iter()
            .map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                CString::new(entry).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
            })
            .collect::<io::Result<Vec<_>>>()
            .map(Some)
    }
}

fn c_string(text: &OsString) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A tracked child started by [`Command::spawn`].
///
/// There is no `kill`: once zreap has reaped the child, its pid may belong to
/// another process, so signal it with a pidfd of your own if you must.
#[derive(Debug)]
pub struct Child {
    pid: pid_t,
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> pid_t {
        self.pid
    }

    /// Waits for the child to exit (see [`crate::wait`]).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        crate::wait(self.pid).map(|exit| exit.status)
    }

    /// Returns the child's status if it has exited, `Ok(None)` if not (see
    /// [`crate::try_wait`]).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        crate::try_wait(self.pid).map(|exit| exit.map(|e| e.status))
    }
}
