//! The cancellation budget's promise, measured: an actor cancelled with
//! grace G answers before G, with every descendant gone, even when one of
//! its children ignores the request (frozen by SIGSTOP) and another is
//! stuck in a call that blocks its thread.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use tractor::ActorNursery;
use tractor_tests::{PidBoard, is_alive, signal};

/// What `portal.cancel_actor()` gives (the documented default grace).
const GRACE: Duration = Duration::from_millis(1000);

static PIDS: LazyLock<PidBoard> = LazyLock::new(PidBoard::default);

/// Hosted by the root: where the middle actor reports its children.
#[tractor::rpc]
async fn report(name: String, pid: u32) {
    PIDS.report(name, pid);
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

/// Blocks a runtime thread: the actor cannot unwind this call.
#[tractor::rpc]
async fn block_thread() {
    std::thread::sleep(Duration::from_secs(3600));
}

/// In the middle actor: starts two leaves, freezes one, blocks the other,
/// reports both, and waits forever.
#[tractor::rpc]
async fn hold_stuck_leaves() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let frozen = n
            .start_actor("frozen")
            .enable_modules([module_path!()])
            .await?;
        let blocked = n
            .start_actor("blocked")
            .enable_modules([module_path!()])
            .await?;
        let frozen_pid = frozen.run(pid::call()).await?;
        let blocked_pid = blocked.run(pid::call()).await?;
        signal(frozen_pid, rustix::process::Signal::STOP);
        let root = tractor::get_registrar().await?;
        root.run(report::call("frozen".into(), frozen_pid)).await?;
        root.run(report::call("blocked".into(), blocked_pid))
            .await?;
        // Never answers; the call it makes keeps a thread busy for an hour.
        blocked.run(block_thread::call()).await
    })
    .await
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_cancelled_subtree_is_gone_within_the_grace() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let middle = n
            .start_actor("middle")
            .enable_modules([module_path!()])
            .await?;
        let middle_pid = middle.run(pid::call()).await?;
        let holding = middle.run(hold_stuck_leaves::call());
        let leaves = async { (PIDS.pid_of("frozen").await, PIDS.pid_of("blocked").await) };
        let (frozen, blocked) = tokio::select! {
            pids = leaves => pids,
            ended = holding => panic!("the middle actor stopped holding its leaves: {ended:?}"),
        };

        let start = Instant::now();
        let acknowledged = middle.cancel_actor().await?;
        let took = start.elapsed();
        println!(
            "cancel bound: grace {GRACE:?}, three levels (a frozen and a blocked grandchild): \
             answered and reaped in {took:?}"
        );
        assert!(
            acknowledged,
            "the middle actor answered before its parent's deadline (took {took:?})"
        );
        assert!(took < GRACE, "the whole subtree within the grace: {took:?}");
        for (name, pid) in [
            ("middle", middle_pid),
            ("frozen", frozen),
            ("blocked", blocked),
        ] {
            assert!(!is_alive(pid), "{name} ({pid}) outlived the cancellation");
        }
        Ok(())
    })
    .await
}
