//! Chaos under supervisors: random SIGKILLs of supervised daemons, and of
//! their own supervised children, while calls run through the portals the
//! spawns returned. The tree must keep answering through those same
//! portals (a call that was in flight on a killed process may fail and is
//! tried again), the process count must stay bounded, and after the round
//! nothing may be left. A second kind of round exceeds the restart
//! intensity: it must end in `RestartsExhausted` at the root, with no hang
//! and no orphan.
//!
//! The seed is printed; replay a failure with `TRACTOR_CHAOS_SEED=<seed>`.
//! `TRACTOR_CHAOS_ROUNDS` sets the rounds of each kind.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::watch;
use tractor::{ActorNursery, Error, Portal, Restart, Supervisor};
use tractor_tests::{descendants_but_spares, exits_within, kill};

const ROUND_LIMIT: Duration = Duration::from_secs(30);
const MINUTE: Duration = Duration::from_secs(60);

// --- run in the tree --------------------------------------------------------

#[tractor::rpc]
async fn echo(n: u64) -> u64 {
    n
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

/// The middle actor's portal to its supervised leaf, once it has one.
static LEAF: LazyLock<watch::Sender<Option<Portal>>> = LazyLock::new(|| watch::Sender::new(None));

fn leaf_portal() -> watch::Receiver<Option<Portal>> {
    LEAF.subscribe()
}

/// The middle actor's main call: supervises a leaf daemon for as long as
/// the middle actor lives, and lends its portal to `via_leaf`.
#[tractor::rpc]
async fn keep_leaf(name: String) -> tractor::Result<()> {
    let supervisor = Supervisor::one_for_one().max_restarts(100, MINUTE);
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let leaf = n.start_actor(name).enable_modules([module_path!()]).await?;
        LEAF.send_replace(Some(leaf));
        std::future::pending::<tractor::Result<()>>().await
    })
    .await
}

/// The middle actor's portal to its leaf, once it has one.
async fn the_leaf() -> tractor::Result<Portal> {
    let mut leaf = leaf_portal();
    let portal = leaf.wait_for(Option::is_some).await.map_err(Error::other)?;
    portal.clone().ok_or_else(|| Error::other("no leaf"))
}

/// Echoes `n` through the leaf.
#[tractor::rpc]
async fn via_leaf(n: u64) -> tractor::Result<u64> {
    the_leaf().await?.run(echo::call(n)).await
}

#[tractor::rpc]
async fn leaf_pid() -> tractor::Result<u32> {
    the_leaf().await?.run(pid::call()).await
}

// --- the rounds -------------------------------------------------------------

/// Whether a failed call is one that a kill explains: the process it was
/// in flight on died (here, or in the middle actor relaying to its leaf).
fn killed_in_flight(err: &Error) -> bool {
    match err {
        Error::Disconnected { .. } => true,
        Error::Remote(remote) => {
            remote.type_name() == "tractor::Error::Disconnected"
                || remote.type_name() == "tractor::Error::Cancelled"
        }
        _ => false,
    }
}

#[derive(Default, Debug)]
struct Counts {
    rounds: usize,
    kills: HashMap<&'static str, usize>,
    calls: usize,
    retried: usize,
    most_processes: usize,
}

/// The most processes a tree of this file may hold: a root's two
/// workers, the middle actor and its leaf, and the fork servers of the
/// root and of the middle actor.
const MOST_PROCESSES: usize = 6;

/// The processes under `me` but spares, once no more than `most` or
/// after a deadline (2 s): one of a killed actor's (its fork server) may
/// still be on its way out, or a spare just forked not yet recognisable
/// as one; a process that stays is counted.
async fn settled_processes(me: u32, most: usize) -> Vec<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let left = descendants_but_spares(me);
        if left.len() <= most || std::time::Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Evaluates `call` (an awaited call) until it answers, trying again
/// after failures a kill explains (at most 100 times), counting those in
/// `retried`.
macro_rules! answered {
    ($retried:expr, $call:expr) => {{
        let mut tries = 0;
        loop {
            match $call {
                Err(err) if killed_in_flight(&err) && tries < 100 => {
                    tries += 1;
                    $retried += 1;
                }
                other => break other,
            }
        }
    }};
}

/// One round of kills while calls run; returns every pid it saw.
async fn kills_while_calling(id: &str, rng: &mut fastrand::Rng, counts: &mut Counts) -> Vec<u32> {
    let me = std::process::id();
    let mut seen = Vec::new();
    let supervisor = Supervisor::one_for_one().max_restarts(100, MINUTE);
    let kills: Vec<(usize, u64)> = (0..4)
        .map(|_| (rng.usize(..4), rng.u64(0..15_000)))
        .collect();
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let workers = [
            n.start_actor(format!("{id}_w0"))
                .enable_modules([module_path!()])
                .await?,
            n.start_actor(format!("{id}_w1"))
                .enable_modules([module_path!()])
                .await?,
        ];
        let middle = n
            .run_in_actor(
                format!("{id}_middle"),
                keep_leaf::call(format!("{id}_leaf")),
            )
            .restart(Restart::Permanent)
            .await?;
        let mut retried = 0;
        let calls = async {
            let mut retried = 0;
            for i in 0..300u64 {
                let answer = match i % 3 {
                    0 | 1 => answered!(retried, workers[i as usize % 3].run(echo::call(i)).await),
                    _ => answered!(retried, middle.run(via_leaf::call(i)).await),
                }?;
                assert_eq!(answer, i, "call {i} answered another's value");
            }
            Ok::<_, Error>(retried)
        };
        let faults = async {
            let mut victims = Vec::new();
            let mut most = 0;
            for (target, delay) in &kills {
                tokio::time::sleep(Duration::from_micros(*delay)).await;
                let (label, pid) = match target {
                    0 | 1 => (
                        "daemon",
                        answered!(retried, workers[*target].run(pid::call()).await)?,
                    ),
                    2 => ("middle", answered!(retried, middle.run(pid::call()).await)?),
                    _ => (
                        "leaf",
                        answered!(retried, middle.run(leaf_pid::call()).await)?,
                    ),
                };
                most = most.max(settled_processes(me, MOST_PROCESSES).await.len());
                kill(pid);
                assert!(
                    exits_within(pid, Duration::from_secs(5)).await,
                    "{pid} survived SIGKILL"
                );
                victims.push((label, pid));
            }
            Ok::<_, Error>((victims, most))
        };
        let (in_calls, (victims, most)) = futures::try_join!(calls, faults)?;
        counts.calls += 300;
        counts.retried += in_calls + retried;
        counts.most_processes = counts.most_processes.max(most);
        for (label, pid) in victims {
            *counts.kills.entry(label).or_default() += 1;
            seen.push(pid);
        }
        // Still answering through the same portals after every kill.
        for worker in &workers {
            seen.push(worker.run(pid::call()).await?);
        }
        seen.push(middle.run(pid::call()).await?);
        seen.push(middle.run(leaf_pid::call()).await?);
        n.cancel().await
    })
    .await
    .unwrap_or_else(|err| panic!("round {id}: the supervised tree failed: {err:?}"));
    seen
}

/// One round that kills a daemon once more than the intensity allows;
/// returns every pid it saw.
async fn exceeds_the_intensity(id: &str, rng: &mut fastrand::Rng) -> Vec<u32> {
    let mut seen = Vec::new();
    let limit = rng.u32(0..3);
    let supervisor = Supervisor::one_for_one().max_restarts(limit, MINUTE);
    let outcome = tractor::open_nursery_with(
        supervisor,
        async |n: &ActorNursery| -> tractor::Result<()> {
            let bystander = n
                .start_actor(format!("{id}_bystander"))
                .enable_modules([module_path!()])
                .await?;
            seen.push(bystander.run(pid::call()).await?);
            let victim = n
                .start_actor(format!("{id}_victim"))
                .enable_modules([module_path!()])
                .await?;
            loop {
                let pid = victim.run(pid::call()).await?;
                seen.push(pid);
                kill(pid);
                assert!(exits_within(pid, Duration::from_secs(5)).await);
            }
        },
    )
    .await;
    match outcome {
        Err(Error::RestartsExhausted {
            actor, restarts, ..
        }) => {
            assert_eq!(actor.name(), format!("{id}_victim"));
            assert_eq!(restarts, limit, "round {id}");
        }
        other => panic!("round {id}: expected RestartsExhausted, got {other:?}"),
    }
    seen
}

async fn assert_clean(id: &str, seen: &[u32]) {
    for pid in seen {
        assert!(
            exits_within(*pid, Duration::from_secs(5)).await,
            "round {id}: {pid} is still alive"
        );
    }
    // Spares waiting for a spawn aside, the fork server (if this backend
    // uses one) is the only process the root may keep between rounds (a
    // spare it is making just then counts only if it stays).
    let left = settled_processes(std::process::id(), 1).await;
    assert!(left.len() <= 1, "round {id}: processes left: {left:?}");
}

#[tractor::test(enable_modules = [module_path!()])]
async fn chaos_under_supervisors() {
    let (seed, rounds) = tractor_tests::chaos_settings(6);
    println!("chaos under supervisors: seed {seed} (replay with TRACTOR_CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut counts = Counts::default();
    let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // Counted after the first round, which may have started a fork server.
    let mut fds_before = None;
    for index in 0..rounds {
        let id = format!("k{index}");
        let seen =
            tokio::time::timeout(ROUND_LIMIT, kills_while_calling(&id, &mut rng, &mut counts))
                .await
                .unwrap_or_else(|_| panic!("round {id} hung (TRACTOR_CHAOS_SEED={seed})"));
        assert_clean(&id, &seen).await;
        counts.rounds += 1;
        fds_before.get_or_insert_with(open_fds);
    }
    let fds_before = fds_before.unwrap_or_else(open_fds);
    let mut exhausted = 0;
    for index in 0..rounds.div_ceil(3) {
        let id = format!("x{index}");
        let seen = tokio::time::timeout(ROUND_LIMIT, exceeds_the_intensity(&id, &mut rng))
            .await
            .unwrap_or_else(|_| panic!("round {id} hung (TRACTOR_CHAOS_SEED={seed})"));
        assert_clean(&id, &seen).await;
        exhausted += 1;
    }
    let fds_after = open_fds();
    // Descriptors stay flat over every restart (a few may be in use by
    // the runtime at either moment).
    assert!(
        fds_after <= fds_before + 4,
        "descriptors grew from {fds_before} to {fds_after}"
    );
    assert!(counts.most_processes <= MOST_PROCESSES, "{counts:?}");
    println!(
        "chaos under supervisors: {} kill rounds ({:?} kills, {} calls, {} retried after a \
         kill, at most {} processes), {exhausted} intensity rounds ended in \
         RestartsExhausted, leftover processes 0, descriptors {fds_before} -> {fds_after}",
        counts.rounds, counts.kills, counts.calls, counts.retried, counts.most_processes
    );
}
