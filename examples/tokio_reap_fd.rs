//! zreap's reap fd in tokio's `AsyncFd`: the runtime wakes the task while a
//! child's exit waits, and `reap_all` collects the exits, in ordinary context
//! and without any SIGCHLD handler. `cargo run --example tokio_reap_fd`
#![deny(unsafe_op_in_unsafe_fn)]

use std::collections::HashSet;
use tokio::io::{unix::AsyncFd, Interest};
use zreap::{Command, InstallFlags};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    zreap::install(InstallFlags::OWN | InstallFlags::NO_HANDLER)?;
    let fd = zreap::reap_fd()?;
    // SAFETY: the reap fd stays open, as the same fd, for the life of the process.
    let reap = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
    let mut waiting = HashSet::new();
    for code in 0..5 {
        let child = Command::new("sh").arg("-c").arg(format!("exit {code}")).spawn()?;
        waiting.insert(child.pid());
    }
    while !waiting.is_empty() {
        let mut ready = reap.readable().await?;
        zreap::reap_all(|exit| {
            println!("child {} ended: {}", exit.pid, exit.status);
            waiting.remove(&exit.pid);
        })?;
        ready.clear_ready();
    }
    println!("all children reaped");
    Ok(())
}
