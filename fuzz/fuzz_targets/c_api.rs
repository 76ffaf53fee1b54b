//! The C API's argument checks (capi/src/lib.rs, ../shared/API.md conventions)
//! on arbitrary sequences of calls: flags, signal numbers, fds, NULL or real
//! pointers, option structs, pids and wait options.
//!
//! Each call's result and errno are compared with a model of the contract;
//! success must leave errno alone. Processes: zspawn runs only a missing
//! program (it must fail and leave nothing) or /bin/true (waited for at once);
//! zfork children `_exit` at once and are waited for; zdaemonize is only
//! called with an invalid field and ZDAEMON_RETURN. After every input the
//! process has no child left, not even a zombie.
#![no_main]

use arbitrary::Arbitrary;
use libc::{c_char, c_int};
use libfuzzer_sys::fuzz_target;
use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};
/// The C ABI, compiled in from its source (the zreap-capi crate is a cdylib).
#[allow(dead_code)]
#[path = "../../capi/src/lib.rs"]
mod capi;
use capi::*;

/// Put in errno before each call: a success must leave it there.
const SENTINEL: c_int = 0x2bad;

#[derive(Arbitrary, Debug)]
enum Program {
    Null,
    Empty,
    TooLong,
    /// An absolute path under a directory that does not exist.
    Missing(u16),
    /// A bare name that no $PATH directory has.
    MissingName(u16),
    True,
}

#[derive(Arbitrary, Debug)]
enum Env {
    Null,
    Empty,
    One,
}

#[derive(Arbitrary, Debug)]
struct SpawnOpts {
    flags: u32,
    pdeathsig: i32,
    cwd: Option<Vec<u8>>,
    fds: [i32; 3],
}

#[derive(Arbitrary, Debug)]
enum DaemonFault {
    UnknownFlag(u32),
    Umask(i32),
    EmptyWorkdir,
    EmptyPidfile,
}

#[derive(Arbitrary, Debug)]
enum Call {
    Install(u32),
    Uninstall,
    All,
    Wait { pid: i32, options: i32, status: bool },
    Fd,
    Stats(bool),
    Version,
    OptionsInit(bool),
    DaemonOptionsInit(bool),
    Ready(i32),
    Spawn { program: Program, argv: bool, env: Env, opts: Option<SpawnOpts> },
    Fork { opts: Option<(u32, i32)>, code: u8 },
    Daemonize { fault: DaemonFault, flags: u32, umask: i32, workdir: Option<Vec<u8>>, pidfile: Option<Vec<u8>> },
}

fn errno() -> c_int {
    // SAFETY: __errno_location always returns this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = value };
}

/// Checks one call's outcome: `expected` is Ok(success value) or Err(errno).
fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, failed: T, expected: Result<Option<T>, c_int>) {
    let e = errno();
    match expected {
        Err(code) => assert!(got == failed && e == code, "{what}: got {got:?} errno {e}, want errno {code}"),
        Ok(value) => {
            assert!(got != failed, "{what}: failed with errno {e}");
            assert_eq!(e, SENTINEL, "{what}: success changed errno");
            if let Some(v) = value {
                assert_eq!(got, v, "{what}");
            }
        }
    }
}

fn valid_signal(sig: i32) -> bool {
    (0..=libc::SIGRTMAX()).contains(&sig)
}

fn fd_check(fd: i32) -> Result<(), c_int> {
    // SAFETY: F_GETFD only queries the fd table.
    if fd == -1 || (fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1) {
        Ok(())
    } else {
        Err(libc::EBADF)
    }
}

fn cstring(bytes: &[u8]) -> CString {
    CString::new(bytes.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>()).unwrap()
}

/// Blocks for `pid` through zwait and returns its status.
fn reap(pid: libc::pid_t) -> c_int {
    let mut status = 0;
    // SAFETY: status is a writable int.
    let got = unsafe { zwait(pid, &mut status, 0) };
    assert_eq!(got, pid, "zwait({pid}): errno {}", errno());
    status
}

struct Model {
    installed: Option<u32>,
    fd: Option<c_int>,
}

fn spawn(program: &Program, with_argv: bool, env: &Env, opts: &Option<SpawnOpts>) {
    let path = match program {
        Program::Null => None,
        Program::Empty => Some(CString::default()),
        Program::TooLong => Some(CString::new(vec![b'a'; libc::PATH_MAX as usize]).unwrap()),
        Program::Missing(n) => Some(CString::new(format!("/nonexistent-zreap-fuzz/{n}")).unwrap()),
        Program::MissingName(n) => Some(CString::new(format!("zreap-fuzz-missing-{n}")).unwrap()),
        Program::True => Some(c"/bin/true".to_owned()),
    };
    let arg0 = c"zreap-fuzz".to_owned();
    let argv: [*mut c_char; 2] = [arg0.as_ptr().cast_mut(), null_mut()];
    let one = c"ZREAP_FUZZ=1".to_owned();
    let env_one: [*mut c_char; 2] = [one.as_ptr().cast_mut(), null_mut()];
    let env_empty: [*mut c_char; 1] = [null_mut()];
    let envp = match env {
        Env::Null => null(),
        Env::Empty => env_empty.as_ptr(),
        Env::One => env_one.as_ptr(),
    };
    let cwd = opts.as_ref().and_then(|o| o.cwd.as_deref().map(cstring));
    let c_opts = opts.as_ref().map(|o| zspawn_options {
        flags: o.flags,
        pdeathsig: o.pdeathsig,
        cwd: cwd.as_ref().map_or(null(), |c| c.as_ptr()),
        stdin_fd: o.fds[0],
        stdout_fd: o.fds[1],
        stderr_fd: o.fds[2],
    });

    let checks = || -> Result<(), c_int> {
        let path = path.as_ref().ok_or(libc::EINVAL)?;
        if !with_argv {
            return Err(libc::EINVAL);
        }
        if let Some(o) = opts {
            if o.flags & !0x7 != 0 || !valid_signal(o.pdeathsig) {
                return Err(libc::EINVAL);
            }
            o.fds.iter().try_for_each(|&fd| fd_check(fd))?;
        }
        match path.as_bytes().len() {
            0 => Err(libc::ENOENT),
            n if n >= libc::PATH_MAX as usize => Err(libc::ENAMETOOLONG),
            _ => Ok(()),
        }
    };
    let expected = checks();

    set_errno(SENTINEL);
    // SAFETY: every pointer is NULL or points to a live C string, a
    // NULL-terminated array of them, or an options struct.
    let pid = unsafe {
        zspawn(
            path.as_ref().map_or(null(), |p| p.as_ptr()),
            if with_argv { argv.as_ptr() } else { null() },
            envp,
            c_opts.as_ref().map_or(null(), |o| o as *const zspawn_options),
        )
    };
    let what = format!("zspawn({program:?}, argv {with_argv}, {env:?}, {opts:?})");
    match expected {
        Err(code) => check(&what, pid, -1, Err(code)),
        Ok(()) if matches!(program, Program::True) && cwd.is_none() => {
            check(&what, pid, -1, Ok(None));
            let status = reap(pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{what}: status {status:#x}");
        }
        Ok(()) if matches!(program, Program::True) => {
            // A fuzzed cwd may or may not exist: either way nothing is left over.
            if pid > 0 {
                reap(pid);
            } else {
                assert!(pid == -1 && errno() != SENTINEL && errno() != 0, "{what}: {pid}");
            }
        }
        Ok(()) => assert!(pid == -1 && errno() != SENTINEL && errno() != 0, "{what}: started a missing program"),
    }
}

fn fork(opts: Option<(u32, i32)>, code: u8) {
    let c_opts = opts.map(|(flags, pdeathsig)| zspawn_options {
        flags,
        pdeathsig,
        cwd: null(),
        stdin_fd: -1,
        stdout_fd: -1,
        stderr_fd: -1,
    });
    let valid = opts.is_none_or(|(flags, sig)| flags & !0x7 == 0 && valid_signal(sig));
    set_errno(SENTINEL);
    // SAFETY: c_opts is NULL or a valid struct; the child only calls _exit.
    let pid = unsafe { zfork(c_opts.as_ref().map_or(null(), |o| o as *const zspawn_options)) };
    if pid == 0 {
        // SAFETY: _exit is async-signal-safe and ends the child at once.
        unsafe { libc::_exit(c_int::from(code)) };
    }
    let what = format!("zfork({opts:?})");
    if valid {
        check(&what, pid, -1, Ok(None));
        let status = reap(pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == c_int::from(code), "{what}: {status:#x}");
    } else {
        if pid > 0 {
            reap(pid);
        }
        check(&what, pid, -1, Err(libc::EINVAL));
    }
}

fn daemonize(fault: &DaemonFault, flags: u32, umask: i32, workdir: &Option<Vec<u8>>, pidfile: &Option<Vec<u8>>) {
    let mut workdir = workdir.as_deref().map(cstring);
    let mut pidfile = pidfile.as_deref().map(cstring);
    let mut flags = flags & 0x1f;
    let mut umask = umask.clamp(-1, 0o777);
    match *fault {
        DaemonFault::UnknownFlag(bits) => flags |= (bits & !0x1f).max(0x20),
        DaemonFault::Umask(m) => umask = if m < -1 { m } else { 0o1000 + (m & 0xffff) },
        DaemonFault::EmptyWorkdir => workdir = Some(CString::default()),
        DaemonFault::EmptyPidfile => pidfile = Some(CString::default()),
    }
    let opts = zdaemon_options {
        flags: flags | ZDAEMON_RETURN,
        workdir: workdir.as_ref().map_or(null(), |c| c.as_ptr()),
        pidfile: pidfile.as_ref().map_or(null(), |c| c.as_ptr()),
        umask,
    };
    set_errno(SENTINEL);
    // SAFETY: opts is valid; a daemon (the contract broken) only calls _exit.
    let pid = unsafe { zdaemonize(&opts) };
    if pid == 0 {
        // SAFETY: as in fork.
        unsafe { libc::_exit(0) };
    }
    check(&format!("zdaemonize({fault:?}, {flags:#x}, {umask})"), pid, -1, Err(libc::EINVAL));
}

fn call(model: &mut Model, c: &Call) {
    match *c {
        Call::Install(flags) => {
            let expected = if flags & !0x7 != 0 {
                Err(libc::EINVAL)
            } else {
                match model.installed {
                    Some(f) if f != flags => Err(libc::EBUSY),
                    _ => Ok(Some(0)),
                }
            };
            set_errno(SENTINEL);
            check(&format!("zreap_install({flags:#x})"), zreap_install(flags), -1, expected);
            if expected.is_ok() {
                model.installed = Some(flags);
            }
        }
        Call::Uninstall => {
            set_errno(SENTINEL);
            check("zreap_uninstall", zreap_uninstall(), -1, Ok(Some(0)));
            model.installed = None;
        }
        Call::All => {
            set_errno(SENTINEL);
            // SAFETY: no callback.
            check("zreap_all", unsafe { zreap_all(None, null_mut()) }, -1, Ok(Some(0)));
        }
        Call::Wait { pid, options, status } => {
            let expected =
                if options & !libc::WNOHANG != 0 || pid == 0 || pid < -1 { libc::EINVAL } else { libc::ECHILD };
            let mut st: c_int = SENTINEL;
            set_errno(SENTINEL);
            // SAFETY: wstatus is NULL or a writable int.
            let got = unsafe { zwait(pid, if status { &mut st } else { null_mut() }, options) };
            check(&format!("zwait({pid}, {options:#x})"), got, -1, Err(expected));
            assert_eq!(st, SENTINEL, "zwait wrote a status on failure");
        }
        Call::Fd => {
            set_errno(SENTINEL);
            let fd = zreap_fd();
            check("zreap_fd", fd, -1, Ok(model.fd));
            // SAFETY: F_GETFD only queries the fd table.
            let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(fd_flags != -1 && fd_flags & libc::FD_CLOEXEC != 0, "zreap_fd not close-on-exec");
            model.fd = Some(fd);
        }
        Call::Stats(null_out) => {
            let mut out = zreap_stats { reaped: 0, reported: 0, dropped: 0, tracked: 0 };
            set_errno(SENTINEL);
            // SAFETY: out is NULL or a writable zreap_stats.
            let got = unsafe { zreap_stats_get(if null_out { null_mut() } else { &mut out }) };
            check("zreap_stats_get", got, -1, if null_out { Err(libc::EINVAL) } else { Ok(Some(0)) });
            assert_eq!(out.tracked, 0, "a tracked child left over");
        }
        Call::Version => {
            // SAFETY: zreap_version returns a static C string.
            let v = unsafe { CStr::from_ptr(zreap_version()) };
            assert_eq!(v.to_str().unwrap(), zreap_rs::VERSION);
        }
        Call::OptionsInit(null_out) => {
            let mut o = zspawn_options {
                flags: !0,
                pdeathsig: -5,
                cwd: c"x".as_ptr(),
                stdin_fd: 7,
                stdout_fd: 7,
                stderr_fd: 7,
            };
            // SAFETY: NULL or a writable zspawn_options.
            unsafe { zspawn_options_init(if null_out { null_mut() } else { &mut o }) };
            if !null_out {
                assert!(o.flags == 0 && o.pdeathsig == 0 && o.cwd.is_null());
                assert_eq!([o.stdin_fd, o.stdout_fd, o.stderr_fd], [-1; 3]);
            }
        }
        Call::DaemonOptionsInit(null_out) => {
            let mut o = zdaemon_options { flags: !0, workdir: c"x".as_ptr(), pidfile: c"y".as_ptr(), umask: 5 };
            // SAFETY: NULL or a writable zdaemon_options.
            unsafe { zdaemon_options_init(if null_out { null_mut() } else { &mut o }) };
            if !null_out {
                assert!(o.flags == 0 && o.workdir.is_null() && o.pidfile.is_null() && o.umask == 0);
            }
        }
        Call::Ready(err) => {
            set_errno(SENTINEL);
            let expected = if err < 0 { Err(libc::EINVAL) } else { Ok(Some(0)) };
            check(&format!("zdaemon_ready({err})"), zdaemon_ready(err), -1, expected);
        }
        Call::Spawn { ref program, argv, ref env, ref opts } => spawn(program, argv, env, opts),
        Call::Fork { opts, code } => fork(opts, code),
        Call::Daemonize { ref fault, flags, umask, ref workdir, ref pidfile } => {
            daemonize(fault, flags, umask, workdir, pidfile)
        }
    }
}

fuzz_target!(|calls: Vec<Call>| {
    let mut model = Model { installed: None, fd: None };
    assert_eq!(zreap_uninstall(), 0);
    for c in calls.iter().take(16) {
        call(&mut model, c);
    }
    // SAFETY: waitpid with a NULL status only queries.
    let left = unsafe { libc::waitpid(-1, null_mut(), libc::WNOHANG) };
    // libFuzzer runs its symbolizer as a child for NEW_FUNC lines: -print_funcs=0.
    assert!(left == -1 && errno() == libc::ECHILD, "a child is left over: {left}");
});
