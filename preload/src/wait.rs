//! wait, waitpid, wait3, wait4 and waitid: exits the shim reaped for the
//! program come back from its store first, exactly once; everything else goes
//! to libc. Stops and continues (WUNTRACED, WCONTINUED) are never stored, so
//! they always come from the kernel.

use crate::chld;
use crate::store::{Want, STORE};
use crate::sys::{errno, set_errno, wstatus_from_siginfo};
use crate::{config, log, pidfd, real};
use libc::{c_int, pid_t};
use std::sync::atomic::Ordering::SeqCst;

/// What a waitpid-style `pid` argument accepts.
fn want_for_pid(pid: pid_t) -> Want {
    match pid {
        -1 => Want::Any,
        // SAFETY: getpgrp cannot fail.
        0 => Want::Group(unsafe { libc::getpgrp() }),
        p if p < -1 => Want::Group(p.wrapping_neg()),
        p => Want::Pid(p),
    }
}

/// The options wait4(2) accepts; any other bit is EINVAL.
const WAIT4_OPTIONS: c_int =
    libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED | libc::__WNOTHREAD | libc::__WCLONE | libc::__WALL;
/// The options waitid(2) accepts; any other bit is EINVAL.
const WAITID_OPTIONS: c_int = libc::WNOHANG
    | libc::WNOWAIT
    | libc::WEXITED
    | libc::WSTOPPED
    | libc::WCONTINUED
    | libc::__WNOTHREAD
    | libc::__WCLONE
    | libc::__WALL;

/// May a wait with these options be answered from the store? Not when the
/// kernel would reject them (EINVAL), nor when they select "clone" children
/// only (`__WCLONE` without `__WALL`): the shim stores only children whose
/// exit signal is SIGCHLD, which such a wait never accepts.
fn store_may_answer(options: c_int, valid: c_int) -> bool {
    options & !valid == 0 && options & (libc::__WCLONE | libc::__WALL) != libc::__WCLONE
}

/// A stored exit for a wait4-style call, written out. Async-signal-safe.
/// After the kernel answered ECHILD: waits for reaps in flight, then looks in
/// the store once more. On a find, errno is put back to `saved`; otherwise it
/// is ECHILD. Async-signal-safe, like the waits that call it.
fn look_again<T>(saved: c_int, look: impl FnOnce() -> Option<T>) -> Option<T> {
    chld::settle();
    let found = look();
    set_errno(if found.is_some() { saved } else { libc::ECHILD });
    found
}

fn from_store(want: Want, status: *mut c_int, usage: *mut libc::rusage) -> Option<pid_t> {
    let (exit, seq) = STORE.take_with_seq(want, false)?;
    // SAFETY: a stored SIGCHLD siginfo.
    let pid = unsafe { exit.info.si_pid() };
    pidfd::delivered(pid, Some(seq));
    let wstatus = wstatus_from_siginfo(&exit.info);
    // SAFETY: the program passed NULL or writable pointers.
    unsafe {
        if let Some(s) = status.as_mut() {
            *s = wstatus;
        }
        if let Some(u) = usage.as_mut() {
            *u = exit.usage;
        }
    }
    log::event("returned the stored exit of", pid, Some(wstatus));
    Some(pid)
}

/// After the kernel's wait4 returned `got`: an exit (not a stop or a
/// continue) makes the pidfds of that child answer as for a reaped process.
/// Async-signal-safe.
fn kernel_reaped(got: pid_t, status: *const c_int, options: c_int) {
    if got <= 0 {
        return;
    }
    // SAFETY: the program passed NULL or a pointer the kernel just wrote.
    let exited = match unsafe { status.as_ref() } {
        Some(&s) => libc::WIFEXITED(s) || libc::WIFSIGNALED(s),
        None => options & (libc::WUNTRACED | libc::WCONTINUED) == 0,
    };
    if exited {
        pidfd::delivered(got, None);
    }
}

/// [`kernel_reaped`] after the kernel's waitid returned 0.
fn kernel_waited(info: *const libc::siginfo_t, options: c_int) {
    if options & libc::WNOWAIT != 0 {
        return;
    }
    // SAFETY: the program passed NULL or a siginfo the kernel just wrote.
    if let Some(info) = unsafe { info.as_ref() } {
        // SAFETY: waitid filled a SIGCHLD siginfo (si_pid 0: nothing changed).
        let pid = unsafe { info.si_pid() };
        if pid > 0 && matches!(info.si_code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED) {
            pidfd::delivered(pid, None);
        }
    }
}

/// Sleeps until the shim's handler ran again, for a blocking wait that polls
/// the kernel, or 100 ms passed: a child may become waitable, or the wait's
/// answer change, with no run of the shim's handler (a tracee's ptrace stop
/// under SA_NOCLDSTOP, a SIGCHLD that sigwait or a signalfd took in another
/// thread, a disposition changed behind the shim's back by sigignore or a raw
/// rt_sigaction, stops asked for, clone children, SIGCHLD blocked here).
/// Returns false where the kernel's own wait would end with EINTR: a signal
/// handler without `SA_RESTART` ran (the caller looks once more, then fails
/// with EINTR); after one with it the sleep goes on, as the kernel's wait
/// would. Where the kernel has no futex_waitv, the sleep is the timed futex
/// of before (EINTR is then lost, but nothing hangs).
fn sleep_for_sigchld(seen: u32) -> bool {
    chld::WAKE_SLEEPERS.fetch_add(1, SeqCst);
    let woken = sleep_on_wake(seen);
    chld::WAKE_SLEEPERS.fetch_sub(1, SeqCst);
    woken
}

/// [`sleep_for_sigchld`]'s sleep, its thread counted as asleep.
fn sleep_on_wake(seen: u32) -> bool {
    match zreap::sys::bare::futex_wait_restartable_for(&chld::WAKE, seen, 100) {
        zreap::sys::bare::Slept::Interrupted => false,
        zreap::sys::bare::Slept::Done => true,
        zreap::sys::bare::Slept::Unsupported => {
            zreap::sys::bare::futex_wait(&chld::WAKE, seen, Some(100));
            true
        }
    }
}

/// wait, waitpid, wait3 and wait4, interposed: all are this call.
///
/// # Safety
/// `status` and `usage` are NULL or writable.
pub(crate) unsafe fn wait4_body(pid: pid_t, status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> pid_t {
    // INT_MIN: the kernel's ESRCH (its negation names no group).
    if !config::active() || pid == pid_t::MIN || !store_may_answer(options, WAIT4_OPTIONS) {
        // SAFETY: forwarded as given.
        return unsafe { real::wait4(pid, status, options, usage) };
    }
    let want = want_for_pid(pid);
    let saved = errno();
    // Inside a fan-out, the program's handler gets the child it is called for.
    if let Some((child, _)) = chld::fanout_child().filter(|&(c, g)| want.accepts(c, g)) {
        // SAFETY: forwarded pointers; WNOHANG: the child has exited.
        let got = unsafe { real::wait4(child, status, options | libc::WNOHANG, usage) };
        kernel_reaped(got, status, options);
        if got == child {
            set_errno(saved);
            return got;
        }
    }
    let mut interrupted = false;
    loop {
        // No shim handler (any more): the kernel's own blocking wait, which
        // the reaper thread leaves every exit to. Not after a handler without
        // SA_RESTART cut the wait: that ends it with EINTR.
        let kernel_wait = if !interrupted && pid <= 0 && options & libc::WNOHANG == 0 {
            chld::enter_kernel_wait()
        } else {
            chld::KernelWait::No
        };
        if kernel_wait != chld::KernelWait::No {
            let got = match from_store(want, status, usage) {
                Some(got) => {
                    set_errno(saved);
                    got
                }
                None => {
                    // SAFETY: forwarded as given.
                    let got = unsafe { real::wait4(pid, status, options, usage) };
                    kernel_reaped(got, status, options);
                    got
                }
            };
            chld::leave_kernel_wait(kernel_wait);
            if got == -1 && errno() == libc::ECHILD {
                // A handler installed meanwhile may have stored an exit.
                if let Some(got) = look_again(saved, || from_store(want, status, usage)) {
                    return got;
                }
            }
            return got;
        }
        let seen = chld::WAKE.load(SeqCst);
        if let Some(got) = from_store(want, status, usage) {
            set_errno(saved);
            return got;
        }
        // A specific child, or no shim handler or thread that could take a
        // child meanwhile: the kernel's own blocking wait is exact. After a
        // handler without SA_RESTART cut the wait: one last look only.
        let blocking_is_exact = !interrupted && (pid > 0 || !chld::shim_reaps());
        let options_now = if blocking_is_exact { options } else { options | libc::WNOHANG };
        // SAFETY: forwarded as given.
        let got = unsafe { real::wait4(pid, status, options_now, usage) };
        kernel_reaped(got, status, options);
        if got == -1 && errno() == libc::ECHILD {
            // The shim may have reaped the child between the two looks.
            return look_again(saved, || from_store(want, status, usage)).unwrap_or(-1);
        }
        if got == 0 && options & libc::WNOHANG != 0 {
            // Other children live, so the kernel says "none exited", not
            // ECHILD: an exit the shim took between the two looks must still
            // be found, as its SIGCHLD may be used up (a signalfd loop).
            chld::settle();
            if let Some(got) = from_store(want, status, usage) {
                set_errno(saved);
                return got;
            }
        }
        if got != 0 || blocking_is_exact || options & libc::WNOHANG != 0 {
            return got;
        }
        if interrupted {
            set_errno(libc::EINTR);
            return -1;
        }
        interrupted = !sleep_for_sigchld(seen);
    }
}

/// Takes (or with `peek`, copies) the oldest stored exit `want` accepts into
/// `info` (which may be NULL). Async-signal-safe.
fn stored_into(want: Want, peek: bool, info: *mut libc::siginfo_t) -> bool {
    match STORE.take_with_seq(want, peek) {
        Some((found, seq)) => {
            if !peek {
                // SAFETY: a stored SIGCHLD siginfo.
                pidfd::delivered(unsafe { found.info.si_pid() }, Some(seq));
            }
            // SAFETY: the program passed a writable siginfo (or NULL).
            if let Some(out) = unsafe { info.as_mut() } {
                *out = found.info;
            }
            true
        }
        None => false,
    }
}

/// waitid(2), interposed: stored exits are returned for WEXITED waits by
/// P_ALL, P_PID and P_PGID (WNOWAIT leaves them stored), and by P_PIDFD for
/// a pidfd the program opened (see [`pidfd`]).
///
/// # Safety
/// As for waitid(2).
pub(crate) unsafe fn waitid_impl(
    idtype: libc::idtype_t,
    id: libc::id_t,
    info: *mut libc::siginfo_t,
    options: c_int,
) -> c_int {
    if idtype == libc::P_PIDFD && options & libc::WEXITED != 0 && config::active() {
        // SAFETY: forwarded contract.
        return unsafe { waitid_pidfd(id as c_int, info, options) };
    }
    let want = match idtype {
        libc::P_ALL => Some(Want::Any),
        libc::P_PID => Some(Want::Pid(id as pid_t)),
        libc::P_PGID if id == 0 => Some(Want::Group(unsafe { libc::getpgrp() })),
        libc::P_PGID => Some(Want::Group(id as pid_t)),
        _ => None,
    };
    let want =
        want.filter(|_| config::active() && options & libc::WEXITED != 0 && store_may_answer(options, WAITID_OPTIONS));
    let Some(want) = want else {
        // SAFETY: forwarded as given.
        return unsafe { real::waitid(idtype, id, info, options) };
    };
    let saved = errno();
    let peek = options & libc::WNOWAIT != 0;
    let stored = |info: *mut libc::siginfo_t| stored_into(want, peek, info);
    // A NULL infop is allowed; a poll made for a blocking wait still needs
    // one, to tell "nothing changed" from a child that did.
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut scratch: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let mut interrupted = false;
    loop {
        // As in wait4_body.
        let kernel_wait = if !interrupted && idtype != libc::P_PID && options & libc::WNOHANG == 0 {
            chld::enter_kernel_wait()
        } else {
            chld::KernelWait::No
        };
        if kernel_wait != chld::KernelWait::No {
            let rc = if stored(info) {
                set_errno(saved);
                0
            } else {
                // SAFETY: forwarded as given.
                let rc = unsafe { real::waitid(idtype, id, info, options) };
                if rc == 0 {
                    kernel_waited(info, options);
                }
                rc
            };
            chld::leave_kernel_wait(kernel_wait);
            if rc == -1 && errno() == libc::ECHILD {
                // A handler installed meanwhile may have stored an exit.
                if let Some(found) = look_again(saved, || stored(info).then_some(0)) {
                    return found;
                }
            }
            return rc;
        }
        let seen = chld::WAKE.load(SeqCst);
        if stored(info) {
            set_errno(saved);
            return 0;
        }
        let blocking_is_exact = !interrupted && (idtype == libc::P_PID || !chld::shim_reaps());
        let options_now = if blocking_is_exact { options } else { options | libc::WNOHANG };
        let polled_into = if info.is_null() && options_now != options { &mut scratch as *mut _ } else { info };
        // SAFETY: forwarded as given (or a local siginfo in place of NULL).
        let rc = unsafe { real::waitid(idtype, id, polled_into, options_now) };
        if rc == 0 {
            kernel_waited(polled_into, options);
        }
        if rc == -1 && errno() == libc::ECHILD {
            return look_again(saved, || stored(info).then_some(0)).unwrap_or(-1);
        }
        // SAFETY: waitid succeeded: si_pid is 0 when nothing changed state (WNOHANG).
        let nothing = rc == 0 && !polled_into.is_null() && unsafe { (*polled_into).si_pid() } == 0;
        if nothing && options & libc::WNOHANG != 0 {
            // As in wait4_body: an exit stored between the two looks.
            chld::settle();
            if stored(info) {
                set_errno(saved);
                return 0;
            }
        }
        if rc != 0 || !nothing || blocking_is_exact || options & libc::WNOHANG != 0 {
            return rc;
        }
        if interrupted {
            set_errno(libc::EINTR);
            return -1;
        }
        interrupted = !sleep_for_sigchld(seen);
    }
}

/// waitid(P_PIDFD): the kernel's answer, unless it no longer has the process
/// (ECHILD: the shim reaped it) or the fd is a stand-in (EBADF): then the
/// stored exit of the pid the fd was opened for, exactly once.
///
/// # Safety
/// As for waitid(2).
unsafe fn waitid_pidfd(pidfd: c_int, info: *mut libc::siginfo_t, options: c_int) -> c_int {
    let saved = errno();
    // SAFETY: forwarded as given.
    let rc = unsafe { real::waitid(libc::P_PIDFD, pidfd as libc::id_t, info, options) };
    if rc == 0 {
        kernel_waited(info, options);
        return rc;
    }
    if !matches!(errno(), libc::ECHILD | libc::EBADF) {
        return rc;
    }
    let Some(want) = pidfd::stored_want(pidfd) else { return rc };
    let peek = options & libc::WNOWAIT != 0;
    look_again(saved, || stored_into(want, peek, info).then_some(0)).unwrap_or(-1)
}
