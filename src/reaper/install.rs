//! Installing and uninstalling the reaper.

use super::{handler, lock, watcher, InstallFlags, Installed, REAPER};
use std::io;

/// Sets up reaping for the whole process (C: `zreap_install`).
///
/// Without [`InstallFlags::OWN`], every child is reaped as soon as it exits:
/// this one call replaces a hand-written SIGCHLD handler.
///
/// - Installing again with the same flags succeeds, and puts zreap's SIGCHLD
///   handler back if the program replaced it (and, in the child of a fork,
///   makes the child a subreaper); with other flags it fails with `EBUSY`
///   until [`uninstall`].
/// - With [`InstallFlags::NO_HANDLER`] a watcher thread keeps [`reap_fd`]
///   readable; when it cannot be started this fails (`EAGAIN`) and installs
///   nothing.
/// - If SIGCHLD is blocked in every thread (so no handler could run), the
///   watcher thread reaps in the handler's place.
/// - Setting SIGCHLD to `SIG_IGN` afterwards makes the kernel reap children
///   itself: their statuses are gone, and waits for them fail with `ECHILD`.
///
/// [`reap_fd`]: crate::reap_fd
///
/// ```
/// use zreap::InstallFlags;
/// zreap::install(InstallFlags::OWN).unwrap();
/// let busy = zreap::install(InstallFlags::empty()).unwrap_err();
/// assert_eq!(busy.raw_os_error(), Some(libc::EBUSY));
/// zreap::uninstall().unwrap();
/// ```
pub fn install(flags: InstallFlags) -> io::Result<()> {
    let mut st = lock();
    if st.installed.as_ref().is_some_and(|current| current.flags != flags) {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    st.ensure_ready_for(flags.contains(InstallFlags::OWN))?;
    if let Some(current) = &st.installed {
        // A fork child keeps the library's state but is no subreaper.
        if flags.contains(InstallFlags::SUBREAPER) {
            nix::sys::prctl::set_child_subreaper(true)?;
        }
        if current.old_action.is_some() && !handler::is_installed()? {
            let replaced = handler::install()?;
            if let Some(installed) = st.installed.as_mut() {
                installed.old_action = Some(replaced);
            }
            // Children that exited meanwhile sent their SIGCHLD to the
            // program's disposition: parked ones, which only passes reap,
            // would stay zombies until the next SIGCHLD.
            REAPER.request_again();
        }
        return Ok(());
    }
    let no_handler = flags.contains(InstallFlags::NO_HANDLER);
    let blocked = !no_handler && handler::blocked_everywhere();
    if no_handler || blocked {
        watcher::start()?;
    }
    if flags.contains(InstallFlags::SUBREAPER) {
        nix::sys::prctl::set_child_subreaper(true)?;
    }
    let old_action = if no_handler { None } else { Some(handler::install()?) };
    st.fd_wanted |= no_handler;
    watcher::set_handler_blocked(blocked);
    st.installed = Some(Installed { flags, old_action });
    watcher::publish_mode(&st);
    // Children that exited before the handler existed send no more signals.
    REAPER.request_again();
    Ok(())
}

/// Puts back the SIGCHLD disposition that zreap replaced (C: `zreap_uninstall`).
/// Succeeds when nothing is installed. Recorded exits stay deliverable; the
/// subreaper setting stays.
pub fn uninstall() -> io::Result<()> {
    let mut st = lock();
    // The all-children scope comes back: a pass (one that runs as the gate is
    // let go, too) may record an untracked exit.
    st.table.reserve_buffer()?;
    if st.fd_wanted && st.handler_active() {
        // Without the handler, the reap fd turns readable for plain children
        // through the watcher, which zreap_fd() did not need to start then.
        watcher::start()?;
    }
    if let Some(Installed { old_action: Some(old), .. }) = &st.installed {
        handler::restore(old)?;
    }
    st.installed = None;
    st.unpark_all();
    watcher::set_handler_blocked(false);
    watcher::publish_mode(&st);
    Ok(())
}
