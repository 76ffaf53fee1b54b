//! popen, pclose and system, re-done over posix_spawn. glibc's own versions
//! wait for their child with an internal waitpid the shim cannot see; once
//! the shim may reap a child, their status could be lost. These wait through
//! the shim's store-aware wait4 instead, so they always get it.

use crate::{config, real, wait};
use libc::{c_char, c_int, pid_t};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};

/// Streams opened by the shim's popen: (FILE*, child pid). Lock-free, so a
/// fork at any moment leaves a usable copy.
const STREAMS: usize = 256;
static STREAM_FILE: [AtomicUsize; STREAMS] = [const { AtomicUsize::new(0) }; STREAMS];
static STREAM_PID: [AtomicI32; STREAMS] = [const { AtomicI32::new(0) }; STREAMS];
static STREAM_FD: [AtomicI32; STREAMS] = [const { AtomicI32::new(-1) }; STREAMS];

const SHELL: &std::ffi::CStr = c"/bin/sh";

/// posix_spawn("/bin/sh", "-c", command) with the given file actions and attributes.
fn spawn_shell(
    command: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attrs: *const libc::posix_spawnattr_t,
) -> Result<pid_t, c_int> {
    let argv: [*const c_char; 4] = [c"sh".as_ptr(), c"-c".as_ptr(), command, std::ptr::null()];
    let mut pid: pid_t = 0;
    // SAFETY: valid argv and environment; actions/attrs initialised by the caller.
    let rc =
        unsafe { libc::posix_spawn(&mut pid, SHELL.as_ptr(), actions, attrs, argv.as_ptr().cast(), real::environ()) };
    if rc == 0 {
        Ok(pid)
    } else {
        Err(rc)
    }
}

/// Waits for `pid` through the store-aware wait4, retrying on EINTR.
fn wait_child(pid: pid_t) -> c_int {
    let mut status = 0;
    loop {
        // SAFETY: status is writable.
        let got = unsafe { wait::wait4_body(pid, &mut status, 0, std::ptr::null_mut()) };
        if got == pid {
            return status;
        }
        if got == -1 && crate::sys::errno() != libc::EINTR {
            return -1;
        }
    }
}

/// popen(3), interposed.
///
/// # Safety
/// As for popen(3).
pub(crate) unsafe fn popen_impl(command: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    if !config::active() {
        // SAFETY: forwarded as given.
        return unsafe { real::popen(command, mode) };
    }
    if command.is_null() || mode.is_null() {
        crate::sys::set_errno(libc::EINVAL);
        return std::ptr::null_mut();
    }
    // SAFETY: mode is a valid C string.
    let mode_bytes = unsafe { std::ffi::CStr::from_ptr(mode) }.to_bytes();
    // As glibc: only 'r', 'w' and 'e', and one of 'r' and 'w'.
    let (reading, writing) = (mode_bytes.contains(&b'r'), mode_bytes.contains(&b'w'));
    if reading == writing || mode_bytes.iter().any(|b| !b"rwe".contains(b)) {
        crate::sys::set_errno(libc::EINVAL);
        return std::ptr::null_mut();
    }
    let cloexec = mode_bytes.contains(&b'e');
    let mut fds = [-1; 2];
    // SAFETY: fds has room for two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return std::ptr::null_mut();
    }
    let (ours, theirs, target) = if reading { (fds[0], fds[1], 1) } else { (fds[1], fds[0], 0) };
    // SAFETY (whole block): file actions and attributes are initialised before
    // use and destroyed after; fds are ours.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawn_file_actions_adddup2(&mut actions, theirs, target);
        // POSIX: streams of earlier popen() calls are closed in the new child.
        for fd in STREAM_FD.iter().map(|f| f.load(SeqCst)).filter(|&fd| fd >= 0 && fd != target) {
            libc::posix_spawn_file_actions_addclose(&mut actions, fd);
        }
        let spawned = spawn_shell(command, &actions, std::ptr::null());
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::close(theirs);
        let pid = match spawned {
            Ok(pid) => pid,
            Err(e) => {
                libc::close(ours);
                crate::sys::set_errno(e);
                return std::ptr::null_mut();
            }
        };
        if !cloexec {
            libc::fcntl(ours, libc::F_SETFD, 0);
        }
        let file = libc::fdopen(ours, if reading { c"r".as_ptr() } else { c"w".as_ptr() });
        if file.is_null() {
            let e = crate::sys::errno();
            libc::close(ours);
            wait_child(pid);
            crate::sys::set_errno(e);
            return std::ptr::null_mut();
        }
        if !remember(file as usize, pid, ours) {
            // No room to remember it: collect the child when the stream closes is
            // impossible, so fail like popen does when it runs out of resources.
            libc::fclose(file);
            wait_child(pid);
            crate::sys::set_errno(libc::EMFILE);
            return std::ptr::null_mut();
        }
        file
    }
}

fn remember(file: usize, pid: pid_t, fd: c_int) -> bool {
    for i in 0..STREAMS {
        if STREAM_FILE[i].compare_exchange(0, file, SeqCst, SeqCst).is_ok() {
            STREAM_PID[i].store(pid, SeqCst);
            STREAM_FD[i].store(fd, SeqCst);
            return true;
        }
    }
    false
}

/// pclose(3), interposed: streams from libc's own popen (opened before the
/// shim was active) go to libc.
///
/// # Safety
/// As for pclose(3).
pub(crate) unsafe fn pclose_impl(stream: *mut libc::FILE) -> c_int {
    let Some(i) = (0..STREAMS).find(|&i| STREAM_FILE[i].load(SeqCst) == stream as usize) else {
        // SAFETY: forwarded as given.
        return unsafe { real::pclose(stream) };
    };
    let pid = STREAM_PID[i].load(SeqCst);
    STREAM_FD[i].store(-1, SeqCst);
    STREAM_FILE[i].store(0, SeqCst);
    // SAFETY: the stream is ours, opened by fdopen.
    unsafe { libc::fclose(stream) };
    wait_child(pid)
}

/// system(3), interposed: SIGINT and SIGQUIT ignored and SIGCHLD blocked in
/// the caller while the command runs, as POSIX specifies.
///
/// # Safety
/// As for system(3).
pub(crate) unsafe fn system_impl(command: *const c_char) -> c_int {
    if !config::active() {
        // SAFETY: forwarded as given.
        return unsafe { real::system(command) };
    }
    if command.is_null() {
        // SAFETY: access with a valid path.
        return c_int::from(unsafe { libc::access(SHELL.as_ptr(), libc::X_OK) } == 0);
    }
    // SAFETY (whole block): valid structs, initialised before use and
    // destroyed after; dispositions restored before returning.
    unsafe {
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        let mut old_int: libc::sigaction = std::mem::zeroed();
        let mut old_quit: libc::sigaction = std::mem::zeroed();
        real::sigaction(libc::SIGINT, &ignore, &mut old_int);
        real::sigaction(libc::SIGQUIT, &ignore, &mut old_quit);
        let mut chld: libc::sigset_t = std::mem::zeroed();
        let mut old_mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_BLOCK, &chld, &mut old_mask);

        let mut attrs: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attrs);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        for (sig, old) in [(libc::SIGINT, &old_int), (libc::SIGQUIT, &old_quit)] {
            if old.sa_sigaction != libc::SIG_IGN {
                libc::sigaddset(&mut defaults, sig);
            }
        }
        libc::posix_spawnattr_setsigdefault(&mut attrs, &defaults);
        libc::posix_spawnattr_setsigmask(&mut attrs, &old_mask);
        libc::posix_spawnattr_setflags(&mut attrs, (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as _);
        let spawned = spawn_shell(command, std::ptr::null(), &attrs);
        libc::posix_spawnattr_destroy(&mut attrs);
        let status = match spawned {
            Ok(pid) => wait_child(pid),
            Err(_) => 127 << 8,
        };
        real::sigaction(libc::SIGINT, &old_int, std::ptr::null_mut());
        real::sigaction(libc::SIGQUIT, &old_quit, std::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
        status
    }
}
