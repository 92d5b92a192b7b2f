//! Supervision: nurseries opened with a `Supervisor` restart failed
//! children (Erlang's one_for_one, one_for_all, rest_for_one), within a
//! restart intensity, and the portals from the spawn follow the restarted
//! process. Every child is a real process; faults are real SIGKILLs and
//! exits; every test checks that the processes it saw are gone.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use tractor::{ActorNursery, Error, Portal, Restart, Supervisor};
use tractor_tests::{exits_within, kill, within};

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

// --- run in children ------------------------------------------------------

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

#[tractor::rpc]
async fn exit_now(code: i32) {
    std::process::exit(code);
}

/// Cuts this actor's connections, its parent's channel among them.
#[tractor::rpc]
fn sever() {
    tractor_tests::sever_actor_connections();
}

#[tractor::rpc]
async fn refuse() -> Result<u32, String> {
    Err("no, thank you".into())
}

#[tractor::rpc]
async fn sleep_forever() {
    tokio::time::sleep(HOUR).await;
}

/// Starts, then waits to be cancelled.
#[tractor::context]
async fn hold(ctx: tractor::Context<(), (), ()>) -> tractor::Result<()> {
    ctx.started(()).await?;
    tokio::time::sleep(HOUR).await;
    Ok(())
}

#[tractor::stream]
fn count() -> impl Stream<Item = u64> {
    async_stream::stream! {
        for i in 0.. {
            tokio::task::yield_now().await;
            yield i;
        }
    }
}

/// Fails on its first attempt for `key` (as counted by the root), then
/// answers the attempt number.
#[tractor::rpc]
async fn fail_first(key: String) -> tractor::Result<u32> {
    let root = tractor::get_registrar().await?;
    let attempt = root.run(attempt::call(key)).await?;
    if attempt == 1 {
        return Err(Error::other("the first attempt fails"));
    }
    Ok(attempt)
}

/// Crashes like native code does on its first attempt for `key`.
#[tractor::rpc]
async fn abort_first(key: String) -> tractor::Result<u32> {
    let root = tractor::get_registrar().await?;
    let attempt = root.run(attempt::call(key)).await?;
    if attempt == 1 {
        std::process::abort();
    }
    Ok(attempt)
}

/// Tells the root its pid, then fails.
#[tractor::rpc]
async fn report_then_fail(name: String) -> tractor::Result<u32> {
    let root = tractor::get_registrar().await?;
    root.run(report::call(name, std::process::id())).await?;
    Err(Error::other("failed after reporting"))
}

/// Supervises a leaf that it makes exit until its supervisor gives up;
/// returns what the nursery returned.
#[tractor::rpc]
async fn exhaust_a_leaf(leaf: String) -> tractor::Result<()> {
    let supervisor = Supervisor::one_for_one().max_restarts(1, MINUTE);
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let leaf = n.start_actor(leaf).enable_modules([module_path!()]).await?;
        loop {
            let _ = leaf.run(exit_now::call(1)).await;
        }
    })
    .await
}

/// Supervises a leaf, kills it, and returns (old pid, new pid through the
/// portal, pid of what `find_actor` finds): the registrar is not this
/// actor, so this checks that it lists the new process only.
#[tractor::rpc]
async fn restart_a_leaf(leaf: String) -> tractor::Result<(u32, u32, u32)> {
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let portal = n
            .start_actor(leaf.as_str())
            .enable_modules([module_path!()])
            .await?;
        let old = portal.run(pid::call()).await?;
        kill_and_wait(old).await;
        let new = portal.run(pid::call()).await?;
        let found = tractor::find_actor(&leaf)
            .await?
            .ok_or_else(|| Error::other("the restarted leaf is not registered"))?;
        let found = found.run(pid::call()).await?;
        n.cancel().await?;
        Ok((old, new, found))
    })
    .await
}

// --- hosted by the test's root actor (tests enable this module) -----------

static PIDS: LazyLock<tractor_tests::PidBoard> = LazyLock::new(Default::default);

#[tractor::rpc]
async fn report(name: String, pid: u32) {
    PIDS.report(name, pid);
}

static ATTEMPTS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Mutex::default);

/// Counts attempts at `key`; returns this one's number (from 1).
#[tractor::rpc]
async fn attempt(key: String) -> u32 {
    let mut attempts = ATTEMPTS.lock().unwrap();
    let count = attempts.entry(key).or_default();
    *count += 1;
    *count
}

// --- helpers ----------------------------------------------------------------

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name).enable_modules([module_path!()]).await
}

async fn pid_through(portal: &Portal) -> u32 {
    within("a call through the portal", portal.run(pid::call()))
        .await
        .unwrap_or_else(|err| panic!("{} did not answer: {err:?}", portal.uid()))
}

/// The pid behind each portal, in order.
async fn pids(portals: &[Portal]) -> Vec<u32> {
    let mut pids = Vec::with_capacity(portals.len());
    for portal in portals {
        pids.push(pid_through(portal).await);
    }
    pids
}

/// SIGKILLs `pid` and waits until it has exited (so that its sockets are
/// closed: the next call waits for the restart rather than racing it).
async fn kill_and_wait(pid: u32) {
    kill(pid);
    assert!(
        exits_within(pid, Duration::from_secs(5)).await,
        "{pid} survived SIGKILL"
    );
}

async fn assert_gone(pids: &[u32]) {
    for &pid in pids {
        assert!(
            exits_within(pid, Duration::from_secs(5)).await,
            "{pid} is still alive after the nursery returned"
        );
    }
}

fn is_signal(status: &std::process::ExitStatus, signal: i32) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(signal)
}

// --- strategies ---------------------------------------------------------------

/// Ports the one_for_one case of Erlang's supervisor: only the killed
/// child restarts, and its portal, uid and name follow it.
#[tractor::test(enable_modules = [module_path!()])]
async fn one_for_one_restarts_only_the_killed_daemon() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let a = daemon(n, "a").await?;
        let b = daemon(n, "b").await?;
        let c = daemon(n, "c").await?;
        let (pa, pb, pc) = (
            pid_through(&a).await,
            pid_through(&b).await,
            pid_through(&c).await,
        );
        let uid = b.uid().clone();
        kill_and_wait(pb).await;

        let restarted = pid_through(&b).await;
        assert_ne!(restarted, pb, "b answers from a new process");
        assert_eq!(b.uid(), &uid, "the restarted child keeps its uid");
        assert_eq!(pid_through(&a).await, pa, "a was not restarted");
        assert_eq!(pid_through(&c).await, pc, "c was not restarted");

        let found = tractor::find_actor("b").await?.expect("b is registered");
        assert_eq!(found.uid(), &uid);
        assert_eq!(
            pid_through(&found).await,
            restarted,
            "the lookup finds the new process"
        );
        seen.extend([pa, pb, pc, restarted]);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_calls_own_error_is_no_failure_of_the_daemon() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let d = daemon(n, "refuser").await?;
        let before = pid_through(&d).await;
        match d.run(refuse::call()).await {
            Err(Error::Remote(err)) => assert_eq!(err.message(), "no, thank you"),
            other => panic!("expected the function's own error, got {other:?}"),
        }
        assert_eq!(pid_through(&d).await, before, "no restart for a call's Err");
        seen.push(before);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn one_for_all_restarts_every_child() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_all(), async |n: &ActorNursery| {
        let portals = [
            daemon(n, "x").await?,
            daemon(n, "y").await?,
            daemon(n, "z").await?,
        ];
        let before = pids(&portals).await;
        kill_and_wait(before[1]).await;
        // The others are cancelled gracefully, then all restart.
        for old in &before {
            assert!(
                exits_within(*old, Duration::from_secs(5)).await,
                "{old} was taken down"
            );
        }
        for (portal, old) in portals.iter().zip(&before) {
            let new = pid_through(portal).await;
            assert_ne!(new, *old, "{} was restarted", portal.uid());
            seen.push(new);
        }
        seen.extend(before);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::rest_for_one(), async |n: &ActorNursery| {
        let portals = [
            daemon(n, "first").await?,
            daemon(n, "second").await?,
            daemon(n, "third").await?,
        ];
        let before = pids(&portals).await;
        kill_and_wait(before[1]).await;
        assert!(
            exits_within(before[2], Duration::from_secs(5)).await,
            "the third child was taken down"
        );
        let after = pids(&portals).await;
        assert_eq!(
            after[0], before[0],
            "the child started before the failed one stays"
        );
        assert_ne!(after[1], before[1], "the failed child restarts");
        assert_ne!(after[2], before[2], "the child started after it restarts");
        seen.extend(before);
        seen.extend(after);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

// --- intensity, restart types, backoff --------------------------------------

#[tractor::test(enable_modules = [module_path!()])]
async fn too_many_restarts_end_in_restarts_exhausted() {
    let mut seen = Vec::new();
    let mut uid = None;
    let supervisor = Supervisor::one_for_one().max_restarts(2, MINUTE);
    let outcome = tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let bystander = daemon(n, "bystander").await?;
        seen.push(pid_through(&bystander).await);
        let victim = daemon(n, "victim").await?;
        uid = Some(victim.uid().clone());
        for _ in 0..2 {
            let pid = pid_through(&victim).await;
            seen.push(pid);
            kill_and_wait(pid).await;
        }
        let last = pid_through(&victim).await;
        seen.push(last);
        kill(last);
        // The supervisor gives up: the body is cancelled here.
        tokio::time::sleep(HOUR).await;
        Ok(())
    })
    .await;
    match outcome {
        Err(Error::RestartsExhausted {
            actor,
            restarts,
            last,
        }) => {
            assert_eq!(Some(actor), uid);
            assert_eq!(restarts, 2);
            match *last {
                Error::ActorDied { status, .. } => assert!(is_signal(&status, 9), "{status}"),
                other => panic!("the last failure should be the SIGKILL: {other:?}"),
            }
        }
        other => panic!("expected RestartsExhausted, got {other:?}"),
    }
    assert_gone(&seen).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_temporary_childs_failure_fails_the_nursery() {
    let mut seen = Vec::new();
    let outcome =
        tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
            let other = daemon(n, "other").await?;
            seen.push(pid_through(&other).await);
            let temporary = n
                .start_actor("temporary")
                .enable_modules([module_path!()])
                .restart(Restart::Temporary)
                .await?;
            let pid = pid_through(&temporary).await;
            seen.push(pid);
            kill(pid);
            tokio::time::sleep(HOUR).await;
            Ok(())
        })
        .await;
    match outcome {
        Err(Error::ActorDied { actor, status }) => {
            assert_eq!(actor.name(), "temporary");
            assert!(is_signal(&status, 9), "{status}");
        }
        other => panic!("expected the temporary child's death, got {other:?}"),
    }
    assert_gone(&seen).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_transient_run_in_actor_runs_again_after_failing() {
    let seven = tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let job = n
            .run_in_actor("job", fail_first::call("transient-job".into()))
            .restart(Restart::Transient)
            .await?;
        job.result().await
    })
    .await
    .unwrap();
    assert_eq!(seven, 2, "the second run's value");
}

#[tractor::rpc]
async fn always_fail() -> tractor::Result<u32> {
    Err(Error::other("never works"))
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_run_that_keeps_failing_gives_its_result_the_supervisors_verdict() {
    let supervisor = Supervisor::one_for_one().max_restarts(1, MINUTE);
    let mut seen = None;
    let outcome = tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let job = n
            .run_in_actor("hopeless", always_fail::call())
            .restart(Restart::Transient)
            .await?;
        let result = job.result().await;
        seen = Some(result.clone());
        result
    })
    .await;
    let exhausted = |outcome: &tractor::Result<u32>| match outcome {
        Err(Error::RestartsExhausted {
            actor,
            restarts,
            last,
        }) => {
            assert_eq!(actor.name(), "hopeless");
            assert_eq!(*restarts, 1);
            assert!(last.to_string().contains("never works"), "{last:?}");
        }
        other => panic!("expected RestartsExhausted, got {other:?}"),
    };
    exhausted(&seen.expect("result() returned"));
    exhausted(&outcome);
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_crashed_run_in_actor_runs_again_in_a_new_process() {
    let attempt =
        tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
            let job = n
                .run_in_actor("native", abort_first::call("abort-job".into()))
                .restart(Restart::Permanent)
                .await?;
            job.result().await
        })
        .await
        .unwrap();
    assert_eq!(attempt, 2);
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_permanent_daemon_that_exits_cleanly_restarts_a_transient_one_does_not() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let permanent = daemon(n, "permanent").await?;
        let transient = n
            .start_actor("transient")
            .enable_modules([module_path!()])
            .restart(Restart::Transient)
            .await?;
        let (pp, pt) = (pid_through(&permanent).await, pid_through(&transient).await);
        seen.extend([pp, pt]);

        let _ = permanent.run(exit_now::call(0)).await;
        assert!(exits_within(pp, Duration::from_secs(5)).await);
        let restarted = pid_through(&permanent).await;
        assert_ne!(
            restarted, pp,
            "a permanent child restarts after a clean exit"
        );
        seen.push(restarted);

        let _ = transient.run(exit_now::call(0)).await;
        assert!(exits_within(pt, Duration::from_secs(5)).await);
        match transient.run(pid::call()).await {
            Err(Error::Disconnected { actor }) => assert_eq!(&actor, transient.uid()),
            other => panic!("a transient child stays down after a clean exit: {other:?}"),
        }
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

/// A lost parent channel is a failure (the semantics' list), so even a
/// Transient child that then winds down on its own is restarted.
#[tractor::test(enable_modules = [module_path!()])]
async fn a_transient_child_that_lost_its_parent_channel_is_restarted() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let d = n
            .start_actor("cut_off")
            .enable_modules([module_path!()])
            .restart(Restart::Transient)
            .await?;
        let old = pid_through(&d).await;
        // The call itself may or may not answer before the cut.
        let _ = d.run(sever::call()).await;
        assert!(
            exits_within(old, Duration::from_secs(5)).await,
            "a child without its parent's channel winds down"
        );
        let new = pid_through(&d).await;
        assert_ne!(new, old, "restarted after losing its parent channel");
        seen.extend([old, new]);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_restart_waits_for_the_backoff() {
    let backoff = Duration::from_millis(400);
    let mut seen = Vec::new();
    let supervisor = Supervisor::one_for_one().backoff(backoff);
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let d = daemon(n, "patient").await?;
        let old = pid_through(&d).await;
        kill_and_wait(old).await;
        let died = Instant::now();
        let new = pid_through(&d).await;
        let took = died.elapsed();
        assert!(
            took >= backoff,
            "restarted {took:?} after the death, before the backoff"
        );
        seen.extend([old, new]);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

// --- what follows a failure -------------------------------------------------

#[tractor::test(enable_modules = [module_path!()])]
async fn calls_streams_and_contexts_in_flight_fail_naming_the_child() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let d = daemon(n, "busy").await?;
        let old = pid_through(&d).await;
        let mut items = d.open_stream(count::call()).await?;
        assert_eq!(items.next().await.transpose()?, Some(0));
        let (context, ()) = d.open_context(hold::call()).await?;
        let call = d.run(sleep_forever::call());
        tokio::pin!(call);
        // The call is out before the kill.
        assert!(futures::poll!(call.as_mut()).is_pending());
        kill_and_wait(old).await;
        match within("the call in flight", call).await {
            Err(Error::Disconnected { actor }) => assert_eq!(&actor, d.uid()),
            other => panic!("the call in flight fails with the child's name: {other:?}"),
        }
        let ended = within("the stream's end", async {
            while let Some(item) = items.next().await {
                if let Err(err) = item {
                    return Some(err);
                }
            }
            None
        })
        .await;
        match ended {
            Some(Error::Disconnected { actor }) => assert_eq!(&actor, d.uid()),
            other => panic!("the stream ends with the child's disconnection: {other:?}"),
        }
        match within("the context's result", context.result()).await {
            Err(Error::Disconnected { actor }) => assert_eq!(&actor, d.uid()),
            other => panic!("the context ends with the child's disconnection: {other:?}"),
        }
        seen.extend([old, pid_through(&d).await]);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn the_registrar_lists_only_the_new_process_of_a_grandchild() {
    let outcome = tractor::open_nursery(async |n: &ActorNursery| {
        let middle = n
            .run_in_actor("middle", restart_a_leaf::call("leaf".into()))
            .await?;
        middle.result().await
    })
    .await;
    let (old, new, found) = outcome.unwrap();
    assert_ne!(old, new);
    assert_eq!(found, new, "find_actor finds the restarted leaf");
    assert_gone(&[old, new]).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn cancel_stops_every_child_and_restarts_none() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_all(), async |n: &ActorNursery| {
        let portals = [daemon(n, "p").await?, daemon(n, "q").await?];
        for portal in &portals {
            seen.push(pid_through(portal).await);
        }
        n.cancel().await?;
        assert_gone(&seen).await;
        for portal in &portals {
            match portal.run(pid::call()).await {
                Err(Error::Disconnected { actor }) => assert_eq!(&actor, portal.uid()),
                other => panic!("a cancelled child stays down: {other:?}"),
            }
        }
        Ok(())
    })
    .await
    .unwrap();
}

/// `n.cancel()` while a restart waits out its backoff: the restart stops,
/// and the nursery returns.
#[tractor::test(enable_modules = [module_path!()])]
async fn cancel_stops_a_restart_under_way() {
    let supervisor = Supervisor::one_for_one().backoff(Duration::from_secs(2));
    let mut seen = Vec::new();
    within(
        "the nursery's return",
        tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
            let d = daemon(n, "waiting").await?;
            let pid = pid_through(&d).await;
            seen.push(pid);
            kill_and_wait(pid).await;
            n.cancel().await?;
            match d.run(pid::call()).await {
                Err(Error::Disconnected { actor }) => assert_eq!(&actor, d.uid()),
                other => panic!("no restart after cancel: {other:?}"),
            }
            Ok(())
        }),
    )
    .await
    .unwrap();
    assert!(tractor::find_actor("waiting").await.unwrap().is_none());
    assert_gone(&seen).await;
}

/// The same for a run whose call failed: the supervisor takes its
/// (live) process down, and `n.cancel()` comes during the backoff.
#[tractor::test(enable_modules = [module_path!()])]
async fn cancel_stops_the_rerun_of_a_failed_call() {
    let supervisor = Supervisor::one_for_one().backoff(Duration::from_secs(2));
    within(
        "the nursery's return",
        tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
            let job = n
                .run_in_actor("reporter", report_then_fail::call("reporter".into()))
                .restart(Restart::Transient)
                .await?;
            let pid = PIDS.pid_of("reporter").await;
            assert!(
                exits_within(pid, Duration::from_secs(5)).await,
                "the failed run's process is taken down before the restart"
            );
            n.cancel().await?;
            match job.result().await {
                Err(Error::Cancelled) => {}
                other => panic!("a run that will not come again is cancelled: {other:?}"),
            }
            Ok(())
        }),
    )
    .await
    .unwrap();
}

/// Dropping a supervised nursery's future while a restart waits out its
/// backoff stops everything: the restart never happens.
#[tractor::test(enable_modules = [module_path!()])]
async fn dropping_the_nursery_stops_a_restart_under_way() {
    let backoff = Duration::from_millis(300);
    let (killed, on_killed) = tokio::sync::oneshot::channel();
    let supervisor = Supervisor::one_for_one().backoff(backoff);
    let nursery = tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let d = daemon(n, "dropped").await?;
        let pid = pid_through(&d).await;
        kill_and_wait(pid).await;
        let _ = killed.send((pid, d.clone()));
        // Waits for the restart, which never comes: the nursery is
        // dropped first.
        d.run(pid::call()).await
    });
    let (pid, portal) = tokio::select! {
        outcome = nursery => panic!("the nursery returned {outcome:?}"),
        killed = on_killed => killed.unwrap(),
    };
    // A portal kept past the drop fails at once: nothing will restart it.
    match within(
        "a call through a dropped nursery's portal",
        portal.run(pid::call()),
    )
    .await
    {
        Err(Error::Disconnected { actor }) => assert_eq!(&actor, portal.uid()),
        other => panic!("expected the child's disconnection, got {other:?}"),
    }
    assert!(exits_within(pid, Duration::from_secs(5)).await);
    // Absence can only be seen by waiting: past the backoff, no new
    // process may have started.
    tokio::time::sleep(backoff * 2).await;
    assert!(
        tractor::find_actor("dropped").await.unwrap().is_none(),
        "a restarted process registered after the drop"
    );
    // Spares waiting for a spawn aside, a fork server (if this backend
    // uses one) is the only process left.
    let forkserver = std::env::var(tractor::START_METHOD_ENV).is_ok_and(|m| m == "forkserver");
    let left = tractor_tests::descendants_but_spares(std::process::id());
    assert!(
        left.len() <= usize::from(forkserver),
        "a restart raced the drop: {left:?}"
    );
}

#[tractor::test(enable_modules = [module_path!()])]
async fn cancel_actor_on_a_supervised_portal_keeps_it_down() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let d = daemon(n, "quits").await?;
        seen.push(pid_through(&d).await);
        assert!(d.cancel_actor().await?, "the child acknowledges");
        match d.run(pid::call()).await {
            Err(Error::Disconnected { actor }) => assert_eq!(&actor, d.uid()),
            other => panic!("a child cancelled through its portal stays down: {other:?}"),
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}

// --- escalation ---------------------------------------------------------------

/// A supervised nursery inside a daemon gives up: its call answers
/// RestartsExhausted, and the daemon fails as a whole, which the root's
/// (plain) nursery sees as an ordinary failure.
#[tractor::test(enable_modules = [module_path!()])]
async fn a_nested_supervisor_that_gives_up_fails_its_actor() {
    let mut middle_pid = 0;
    let outcome = tractor::open_nursery(async |n: &ActorNursery| {
        let middle = daemon(n, "middle").await?;
        middle_pid = pid_through(&middle).await;
        match middle.run(exhaust_a_leaf::call("leaf".into())).await {
            Err(Error::Remote(err)) => {
                assert_eq!(
                    err.type_name(),
                    "tractor::Error::RestartsExhausted",
                    "{err:?}"
                );
                assert!(err.message().contains("leaf"), "{err:?}");
            }
            other => panic!("the nested supervisor's call answers its error: {other:?}"),
        }
        tokio::time::sleep(HOUR).await;
        Ok(())
    })
    .await;
    match outcome {
        Err(Error::ActorDied { actor, status }) => {
            assert_eq!(actor.name(), "middle");
            assert_eq!(status.code(), Some(3), "the escalation's exit status");
        }
        other => panic!("the root sees the middle actor fail: {other:?}"),
    }
    assert_gone(&[middle_pid]).await;
}

/// The same, one level up: the root's supervisor restarts the failed
/// middle actor, whose new process runs again.
#[tractor::test(enable_modules = [module_path!()])]
async fn a_supervisor_restarts_a_child_whose_own_supervisor_gave_up() {
    let mut seen = Vec::new();
    tractor::open_nursery_with(Supervisor::one_for_one(), async |n: &ActorNursery| {
        let middle = daemon(n, "middle").await?;
        let first = pid_through(&middle).await;
        let _ = middle.run(exhaust_a_leaf::call("leaf".into())).await;
        assert!(
            exits_within(first, Duration::from_secs(5)).await,
            "the middle actor failed"
        );
        let second = pid_through(&middle).await;
        assert_ne!(first, second);
        seen.extend([first, second]);
        n.cancel().await
    })
    .await
    .unwrap();
    assert_gone(&seen).await;
}
