//! Nursery semantics: one-cancels-all, error collection, cancellation,
//! teardown of whole subtrees. Every child is a real process, and every
//! test checks that the processes it made are gone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::{Barrier, oneshot};
use tractor::{ActorNursery, Error, Portal};
use tractor_tests::{exits_within, is_alive};

const HOUR: Duration = Duration::from_secs(3600);

#[tractor::rpc]
async fn assert_err() {
    let answer = 1 + 1;
    assert_eq!(answer, 3, "the arithmetic is off");
}

#[tractor::rpc]
async fn sleep_forever() {
    tokio::time::sleep(HOUR).await;
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

#[tractor::rpc]
async fn exit_now(code: i32) {
    std::process::exit(code);
}

/// Blocks a runtime thread: the actor cannot unwind this call.
#[tractor::rpc]
async fn block_thread() {
    std::thread::sleep(HOUR);
}

// --- hosted by the test's root actor (tests enable this module) -----------

static BARRIERS: LazyLock<Mutex<HashMap<String, Arc<Barrier>>>> = LazyLock::new(Mutex::default);
static REPORTS: LazyLock<Mutex<HashMap<String, oneshot::Sender<u32>>>> =
    LazyLock::new(Mutex::default);

/// Returns once `parties` callers have called with the same `name`.
#[tractor::rpc]
async fn rendezvous(name: String, parties: usize) {
    let barrier = BARRIERS
        .lock()
        .unwrap()
        .entry(name)
        .or_insert_with(|| Arc::new(Barrier::new(parties)))
        .clone();
    barrier.wait().await;
}

/// Hands a pid to the test waiting on `name`.
#[tractor::rpc]
async fn report(name: String, pid: u32) {
    if let Some(waiter) = REPORTS.lock().unwrap().remove(&name) {
        let _ = waiter.send(pid);
    }
}

fn expect_report(name: &str) -> oneshot::Receiver<u32> {
    let (tx, rx) = oneshot::channel();
    REPORTS.lock().unwrap().insert(name.to_owned(), tx);
    rx
}

// --- run in children ------------------------------------------------------

/// Waits for its siblings, then fails.
#[tractor::rpc]
async fn fail_together(name: String, parties: usize) {
    let root = tractor::get_registrar().await.unwrap();
    root.run(rendezvous::call(name, parties)).await.unwrap();
    panic!("failing together");
}

/// Spawns `breadth` failing children and waits for them.
#[tractor::rpc]
async fn spawn_failers(breadth: usize) -> tractor::Result<()> {
    let me = tractor::current_actor().name().to_string();
    tractor::open_nursery(async |n: &ActorNursery| {
        for i in 0..breadth {
            n.run_in_actor(format!("{me}_failer_{i}"), assert_err::call())
                .await?;
        }
        Ok(())
    })
    .await
}

/// Spawns a grandchild, reports its pid to the root, then blocks its
/// runtime thread forever.
#[tractor::rpc]
async fn host_blocked_grandchild(report_as: String) -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let leaf = n
            .start_actor("blocked_leaf")
            .enable_modules([module_path!()])
            .await?;
        let leaf_pid = leaf.run(pid::call()).await?;
        let root = tractor::get_registrar().await?;
        root.run(report::call(report_as, leaf_pid)).await?;
        leaf.run(block_thread::call()).await
    })
    .await
}

// --- helpers --------------------------------------------------------------

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name).enable_modules([module_path!()]).await
}

async fn pid_of(portal: &Portal) -> tractor::Result<u32> {
    portal.run(pid::call()).await
}

/// Asserts every leaf of `err` is the `assert_err`/`fail_together` panic,
/// raised by an actor whose name starts with `prefix`, each actor once.
/// Returns how many leaves there are.
fn assert_panics_from(err: &Error, prefix: &str) -> usize {
    let leaves = err.remote_errors();
    assert!(!leaves.is_empty(), "no remote errors in {err:?}");
    let mut actors = HashSet::new();
    for leaf in &leaves {
        assert_eq!(leaf.type_name(), "panic", "{err:?}");
        assert!(leaf.actor().name().starts_with(prefix), "{err:?}");
        assert!(
            actors.insert(leaf.actor().clone()),
            "one error per actor: {err:?}"
        );
    }
    assert_eq!(
        count_cancelled(err),
        0,
        "self-inflicted cancellations leaked: {err:?}"
    );
    leaves.len()
}

fn count_cancelled(err: &Error) -> usize {
    match err {
        Error::Cancelled => 1,
        Error::Multi(errors) => errors.iter().map(count_cancelled).sum(),
        _ => 0,
    }
}

async fn assert_all_exit(pids: &[u32]) {
    for &pid in pids {
        assert!(
            exits_within(pid, Duration::from_secs(5)).await,
            "process {pid} is still alive"
        );
    }
}

// --- tests ----------------------------------------------------------------

#[tractor::test(enable_modules = [module_path!()])]
async fn two_failing_children_are_both_reported() {
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        for i in 0..2 {
            n.run_in_actor(
                format!("together_{i}"),
                fail_together::call("two".into(), 2),
            )
            .await?;
        }
        Ok(())
    })
    .await
    .unwrap_err();
    // Both fail at once after meeting; each error is reported unless the
    // nursery's cancel reached that child first (possible under load), and
    // nothing else comes with them.
    match assert_panics_from(&err, "together_") {
        2 => assert!(
            matches!(err, Error::Multi(ref errors) if errors.len() == 2),
            "{err:?}"
        ),
        _ => assert!(matches!(err, Error::Remote(_)), "one error, alone: {err:?}"),
    }
}

#[tractor::test]
async fn twenty_five_failing_children() {
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let spawns = (0..25).map(|i| {
            n.run_in_actor(format!("failer_{i}"), assert_err::call())
                .into_future()
        });
        // Some spawns are cut short when the first failures cancel the
        // body; the nursery absorbs those.
        let _ = futures::future::join_all(spawns).await;
        Ok(())
    })
    .await
    .unwrap_err();
    // Every leaf is one failer's panic, none twice, no cancellation leaked.
    assert_panics_from(&err, "failer_");
}

#[tractor::test]
async fn unawaited_failure_stops_a_sleeping_sibling_within_two_seconds() {
    let started = tokio::time::Instant::now();
    let (tx, rx) = oneshot::channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(2),
        tractor::open_nursery(async |n: &ActorNursery| {
            let sleeper = n.run_in_actor("sleeper", sleep_forever::call()).await?;
            let _ = tx.send(pid_of(&sleeper).await?);
            // Nobody awaits this one's result.
            n.run_in_actor("failer", assert_err::call()).await?;
            sleeper.result().await
        }),
    )
    .await
    .expect("the nursery took more than 2 s");
    let err = outcome.unwrap_err();
    assert_panics_from(&err, "failer");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        !is_alive(rx.await.unwrap()),
        "the sleeper outlived the nursery"
    );
}

#[tractor::test]
async fn three_daemons_and_one_failing_child() {
    let (tx, rx) = oneshot::channel();
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let mut pids = Vec::new();
        for i in 0..3 {
            let portal = daemon(n, &format!("daemon_{i}")).await?;
            pids.push(pid_of(&portal).await?);
        }
        let _ = tx.send(pids);
        n.run_in_actor("failer", assert_err::call()).await?;
        Ok(())
    })
    .await
    .unwrap_err();
    assert_eq!(assert_panics_from(&err, "failer"), 1);
    let Error::Remote(remote) = &err else {
        panic!("expected exactly the failer's error, got {err:?}");
    };
    assert_eq!(
        remote.message(),
        "assertion `left == right` failed: the arithmetic is off\n  left: 2\n right: 3"
    );
    for pid in rx.await.unwrap() {
        assert!(!is_alive(pid), "daemon {pid} outlived the nursery");
    }
}

#[tractor::test]
async fn nursery_cancel_stops_every_child() -> tractor::Result<()> {
    let pids = tractor::open_nursery(async |n: &ActorNursery| {
        let a = daemon(n, "a").await?;
        let b = daemon(n, "b").await?;
        let sleeper = n.run_in_actor("sleeper", sleep_forever::call()).await?;
        let pids = vec![
            pid_of(&a).await?,
            pid_of(&b).await?,
            pid_of(&sleeper).await?,
        ];
        n.cancel().await?;
        for &pid in &pids {
            assert!(!is_alive(pid), "{pid} survived n.cancel()");
        }
        assert!(matches!(sleeper.result().await, Err(Error::Cancelled)));
        // Calls to a cancelled actor fail rather than hang.
        assert!(a.run(pid::call()).await.is_err());
        Ok(pids)
    })
    .await?;
    assert_eq!(pids.len(), 3);
    Ok(())
}

#[tractor::test]
async fn cancel_actor_stops_one_daemon() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let frank = daemon(n, "frank").await?;
        let other = daemon(n, "other").await?;
        let frank_pid = pid_of(&frank).await?;
        assert!(frank.cancel_actor().await?, "frank acknowledged");
        assert!(!is_alive(frank_pid));
        // Cancelling again: already gone.
        assert!(!frank.cancel_actor().await?);
        // The sibling is untouched.
        pid_of(&other).await?;
        other.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn dropping_the_nursery_future_kills_and_reaps_children() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut nursery = Box::pin(tractor::open_nursery(
        async |n: &ActorNursery| -> tractor::Result<()> {
            let a = daemon(n, "dropped_a").await?;
            let b = n.run_in_actor("dropped_b", sleep_forever::call()).await?;
            tx.send(pid_of(&a).await?).unwrap();
            tx.send(pid_of(&b).await?).unwrap();
            std::future::pending().await
        },
    ));
    let mut pids = Vec::new();
    while pids.len() < 2 {
        tokio::select! {
            pid = rx.recv() => pids.push(pid.unwrap()),
            outcome = &mut nursery => panic!("the nursery ended early: {outcome:?}"),
        }
    }
    drop(nursery);
    assert_all_exit(&pids).await;
}

/// The root fails while its grandchild is blocked in a call (and, with
/// `freeze`, stopped by SIGSTOP so it cannot even answer a cancel); the
/// whole subtree must still end.
async fn root_fails_over_a_stuck_grandchild(report_as: &str, freeze: bool) {
    let reported = expect_report(report_as);
    let (tx, rx) = oneshot::channel();
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let middle = n
            .run_in_actor("middle", host_blocked_grandchild::call(report_as.into()))
            .await?;
        let leaf = reported.await.expect("the middle actor reports its child");
        if freeze {
            tractor_tests::signal(leaf, rustix::process::Signal::STOP);
        }
        let _ = tx.send((pid_of(&middle).await?, leaf));
        Err::<(), _>(Error::other("the root gives up"))
    })
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "the root gives up");
    let (middle, leaf) = rx.await.unwrap();
    assert_all_exit(&[middle, leaf]).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn blocked_grandchild_is_hard_killed_when_the_root_errors() {
    root_fails_over_a_stuck_grandchild("blocked", false).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn frozen_grandchild_is_killed_when_the_root_errors() {
    root_fails_over_a_stuck_grandchild("frozen", true).await;
}

#[tractor::test]
async fn nested_errors_depth_two_breadth_two() {
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        for i in 0..2 {
            n.run_in_actor(format!("spawner_{i}"), spawn_failers::call(2))
                .await?;
        }
        Ok(())
    })
    .await
    .unwrap_err();
    assert_panics_from(&err, "spawner_");
    for leaf in err.remote_errors() {
        let (spawner, _) = leaf
            .actor()
            .name()
            .split_once("_failer_")
            .expect("a grandchild");
        let relays: Vec<_> = leaf.relays().iter().map(|uid| uid.name()).collect();
        assert_eq!(relays, [spawner], "relayed once, by its parent: {err:?}");
    }
}

#[tractor::test]
async fn body_error_cancels_children_and_is_reported_once() {
    let (tx, rx) = oneshot::channel();
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let d = daemon(n, "bystander").await?;
        let _ = tx.send(pid_of(&d).await?);
        Err::<(), _>(Error::other("body broke"))
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Other(_)), "{err:?}");
    assert_eq!(err.to_string(), "body broke");
    assert!(!is_alive(rx.await.unwrap()));
}

#[tractor::test]
async fn pending_result_gets_the_error_and_reraising_reports_it_once() {
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let failer = n.run_in_actor("failer", assert_err::call()).await?;
        failer.result().await
    })
    .await
    .unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("expected the failer's error alone, got {err:?}");
    };
    assert_eq!(remote.actor().name(), "failer");
}

#[tractor::test]
async fn body_and_child_errors_come_back_together() {
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let failer = n.run_in_actor("failer", assert_err::call()).await?;
        let seen = failer.result().await.unwrap_err();
        // Handled, then the body fails differently before its next await.
        Err::<(), _>(Error::other(format!(
            "body failed after: {}",
            seen.remote_errors()[0].actor().name()
        )))
    })
    .await
    .unwrap_err();
    let Error::Multi(errors) = &err else {
        panic!("expected child and body errors, got {err:?}");
    };
    assert_eq!(errors.len(), 2, "{err:?}");
    assert_eq!(errors[0].remote_errors()[0].actor().name(), "failer");
    assert_eq!(errors[1].to_string(), "body failed after: failer");
    assert!(err.to_string().contains("failer"), "{err}");
}

#[tractor::test]
async fn a_daemon_that_dies_is_an_error() {
    let err = tractor::open_nursery(async |n: &ActorNursery| -> tractor::Result<()> {
        let quitter = daemon(n, "quitter").await?;
        let _ = quitter.run(exit_now::call(3)).await;
        std::future::pending().await
    })
    .await
    .unwrap_err();
    match err {
        Error::ActorDied { actor, status } => {
            assert_eq!(actor.name(), "quitter");
            assert_eq!(status.code(), Some(3), "{status}");
        }
        other => panic!("expected ActorDied, got {other:?}"),
    }
}

#[tractor::test]
async fn spawn_errors_say_what_is_wrong() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let err = n.start_actor(" ").await.unwrap_err();
        assert!(err.to_string().contains("needs a name"), "{err}");
        Ok(())
    })
    .await
}

#[test]
fn open_nursery_outside_an_actor_is_an_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(tractor::open_nursery(async |_: &ActorNursery| Ok(())))
        .unwrap_err();
    assert!(matches!(err, Error::NotInActor));
}

#[tractor::rpc]
async fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

#[tractor::test]
async fn both_start_methods_spawn_working_actors() -> tractor::Result<()> {
    let root = std::process::id();
    tractor::open_nursery(async |n: &ActorNursery| {
        let exec = n
            .start_actor("by_exec")
            .enable_modules([module_path!()])
            .start_method(tractor::StartMethod::Exec)
            .await?;
        let forked = n
            .start_actor("by_fork")
            .enable_modules([module_path!()])
            .start_method(tractor::StartMethod::ForkServer)
            .await?;
        // An exec'd child is ours; a forked one is the fork server's.
        assert_eq!(exec.run(parent_pid::call()).await?, root);
        let server = forked.run(parent_pid::call()).await?;
        assert_ne!(server, root);
        assert_ne!(forked.run(pid::call()).await?, server);
        // The fork server's children are reaped and reported like any other.
        let forked_pid = pid_of(&forked).await?;
        assert!(forked.cancel_actor().await?);
        assert!(!is_alive(forked_pid));
        exec.cancel_actor().await?;
        Ok(())
    })
    .await
}
