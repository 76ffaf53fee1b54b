//! The classic forking echo server (Stevens, UNP ch. 5) with a `wait()`-once
//! SIGCHLD handler leaks zombies when many connections close at once; the
//! same server with `zreap_install(0)` instead of the handler leaks none.
//! See `tests/support/echo.rs` for what one round does.

use zreap_testsupport as support;

use support::children_of;
use support::echo::{both_servers, CONNECTIONS};

const ROUNDS: usize = 20;

#[test]
fn handwritten_server_leaks_zombies_zreap_server_does_not() {
    // Both servers run at the same time, one thread each (~1 s per round).
    let (handwritten, zreap) = both_servers(ROUNDS);

    println!("zombies added per round ({CONNECTIONS} connections closed at once):");
    println!("  hand-written wait()-once handler: {handwritten:?}");
    println!("  zreap_install(0):                 {zreap:?}");

    // Cleanup: the servers, the clients and every orphaned server child were reaped.
    let left = children_of(std::process::id() as i32);
    assert!(left.is_empty(), "processes left behind: {left:?}");

    let leaky_rounds = handwritten.iter().filter(|&&n| n > 0).count();
    assert!(
        leaky_rounds > 0,
        "the hand-written server left no zombie in {ROUNDS} rounds ({handwritten:?}): \
         this machine does not show the race, so the zreap result proves nothing"
    );
    assert!(zreap.iter().all(|&n| n == 0), "zreap_install(0) left zombies: {zreap:?}");
}
