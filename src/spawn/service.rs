//! Parent-death signals done right.
//!
//! `PR_SET_PDEATHSIG` has two traps. It is lost if the parent dies before the
//! child calls prctl: so the child compares `getppid()` with the pid recorded
//! before the fork and signals itself if they differ. And it fires when the
//! *thread* that forked exits, not the process: so `spawn` with a parent-death
//! signal, called from any thread but the main one, hands the clone to a
//! long-lived internal thread that lives as long as the process.
//!
//! `fork` cannot do that (the child is a copy of the calling thread), so for a
//! child of `fork` the signal fires when the thread that called `fork` exits,
//! or the process dies, whichever comes first.
//!
//! Post-fork code: `forget_service_in_child` runs in a forked child (one
//! atomic store).

use super::{child, SpawnRequest};
use crate::atfork::{self, Concern};
use crate::sys;
use libc::pid_t;
use std::io;
use std::sync::atomic::{AtomicPtr, Ordering::SeqCst};
use std::sync::mpsc;

/// A spawn request handed to the service thread; the caller waits for the
/// reply, so the borrowed request outlives the job.
struct Job {
    request: *const SpawnRequest<'static>,
    reply: mpsc::SyncSender<io::Result<pid_t>>,
}

// SAFETY: the request pointer is only read by the service thread while the
// sending thread blocks on the reply, which keeps the request alive.
unsafe impl Send for Job {}

struct Service {
    jobs: mpsc::Sender<Job>,
}

static SERVICE: AtomicPtr<Service> = AtomicPtr::new(std::ptr::null_mut());

/// Spawns from the long-lived service thread, so that the child's parent-death
/// signal is tied to the life of the process rather than the calling thread.
pub(super) fn spawn_from_service(request: &SpawnRequest<'_>) -> io::Result<pid_t> {
    let service = service()?;
    let (reply, answer) = mpsc::sync_channel(1);
    let job = Job { request: (request as *const SpawnRequest<'_>).cast(), reply };
    service.jobs.send(job).map_err(|_| again())?;
    answer.recv().map_err(|_| again())?
}

fn service() -> io::Result<&'static Service> {
    let current = SERVICE.load(SeqCst);
    if !current.is_null() {
        // SAFETY: a published service is never freed (only forgotten in a fork child).
        return Ok(unsafe { &*current });
    }
    // Before the service is published: a fork by another thread from then
    // on, even before the thread below exists, forgets it in its child.
    atfork::set_hooks(Concern::Spawner, None, None, Some(forget_service_in_child));
    let (jobs, inbox) = mpsc::channel::<Job>();
    // The thread exists before the service is published, so no other thread
    // can send to a service whose thread failed to start.
    std::thread::Builder::new().name("zreap-spawner".into()).spawn(move || {
        sys::block_all_signals_in_this_thread();
        for job in inbox {
            // SAFETY: the sender blocks until the reply, keeping the request alive.
            let result = child::spawn_here(unsafe { &*job.request });
            let _ = job.reply.send(result);
        }
    })?;
    let fresh = Box::into_raw(Box::new(Service { jobs }));
    match SERVICE.compare_exchange(std::ptr::null_mut(), fresh, SeqCst, SeqCst) {
        // SAFETY: just published; never freed.
        Ok(_) => Ok(unsafe { &*fresh }),
        Err(existing) => {
            // SAFETY: fresh lost the race and was never shared; dropping its
            // sender ends the thread started above.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: a published service is never freed.
            Ok(unsafe { &*existing })
        }
    }
}

/// In a forked child the service thread does not exist: forget it (its memory
/// is left as is) so the next spawn starts a new one. Async-signal-safe
/// (post-fork child code: one atomic store, made only when there is a
/// service to forget, since a write copies the page).
#[link_section = ".zreap_fork_child"]
fn forget_service_in_child() {
    if !SERVICE.load(SeqCst).is_null() {
        SERVICE.store(std::ptr::null_mut(), SeqCst);
    }
}

fn again() -> io::Error {
    io::Error::from_raw_os_error(libc::EAGAIN)
}
