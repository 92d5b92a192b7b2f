//! Chaos: random faults in live actor trees. Each round builds a small
//! tree, runs calls or a stream through it, and injects one fault at a
//! random moment: SIGKILL of a child or a grandchild, connections cut
//! mid-stream, a child stopped (SIGSTOP) while it is being cancelled. In
//! every round the root must get an error (never hang: each round is
//! bounded), and afterwards no process of the tree may be alive and the
//! no lookup may find any of its names.
//!
//! The seed is printed; replay a failure with `TRACTOR_CHAOS_SEED=<seed>`.
//! `TRACTOR_CHAOS_ROUNDS` sets the rounds per test (two tests run).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tractor::{ActorNursery, Error, StreamContext};
use tractor_tests::{PidBoard, exits_within, kill, signal};

const ROUND_LIMIT: Duration = Duration::from_secs(10);

// --- hosted by the root: where every actor of a round reports its pid ----

static PIDS: LazyLock<PidBoard> = LazyLock::new(PidBoard::default);

#[tractor::rpc]
async fn report(name: String, pid: u32) {
    PIDS.report(name, pid);
}

/// Waits until `name` has reported its pid.
async fn pid_of(name: &str) -> u32 {
    PIDS.pid_of(name).await
}

async fn announce() -> tractor::Result<()> {
    let me = tractor::current_actor();
    let root = tractor::get_registrar().await?;
    root.run(report::call(me.name().to_owned(), std::process::id()))
        .await
}

// --- run in the tree --------------------------------------------------------

#[tractor::rpc]
async fn echo(n: u64) -> u64 {
    n
}

#[tractor::rpc]
async fn hello() -> tractor::Result<()> {
    announce().await
}

#[tractor::stream]
fn endless() -> impl Stream<Item = u64> {
    async_stream::stream! {
        for i in 0.. {
            tokio::task::yield_now().await;
            yield i;
        }
    }
}

/// Spawns `leaf` and relays its endless stream.
#[tractor::stream]
async fn relay(ctx: StreamContext<u64>, leaf: String) -> tractor::Result<()> {
    announce().await?;
    tractor::open_nursery(async |n: &ActorNursery| {
        let leaf = n.start_actor(leaf).enable_modules([module_path!()]).await?;
        leaf.run(hello::call()).await?;
        let mut items = leaf.open_stream(endless::call()).await?;
        while let Some(item) = items.next().await {
            ctx.send_yield(item?).await?;
        }
        Ok(())
    })
    .await
}

/// Cuts every connection of this actor to other actors, as a broken
/// network would (sockets with a named peer: TCP, or another actor's Unix
/// socket; the runtime's own unnamed socket pairs are left alone).
#[tractor::rpc]
fn sever() {
    tractor_tests::sever_actor_connections();
}

// --- the rounds -------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillChildDuringCalls,
    KillGrandchildDuringStream,
    KillMiddleDuringStream,
    CutConnectionsMidStream,
    StopChildDuringCancel,
}

const FAULTS: [Fault; 5] = [
    Fault::KillChildDuringCalls,
    Fault::KillGrandchildDuringStream,
    Fault::KillMiddleDuringStream,
    Fault::CutConnectionsMidStream,
    Fault::StopChildDuringCancel,
];

struct Round {
    id: String,
    fault: Fault,
    /// Microseconds to let the tree work before the fault.
    delay: u64,
}

impl Round {
    fn name(&self, role: &str) -> String {
        format!("{}_{role}", self.id)
    }

    async fn daemon(&self, n: &ActorNursery, role: &str) -> tractor::Result<tractor::Portal> {
        let portal = n
            .start_actor(self.name(role))
            .enable_modules([module_path!()])
            .await?;
        portal.run(hello::call()).await?;
        Ok(portal)
    }

    /// What the root's error must name: the actor the fault hit, or the
    /// root's own giving up.
    fn expected(&self) -> String {
        match self.fault {
            Fault::KillChildDuringCalls | Fault::CutConnectionsMidStream => self.name("child"),
            Fault::KillGrandchildDuringStream => self.name("leaf"),
            Fault::KillMiddleDuringStream => self.name("middle"),
            Fault::StopChildDuringCancel => "the root gives up".into(),
        }
    }

    async fn pause(&self) {
        tokio::time::sleep(Duration::from_micros(self.delay)).await;
    }

    /// Runs the round; the error the root got.
    async fn run(&self) -> Error {
        let outcome = tractor::open_nursery(async |n: &ActorNursery| -> tractor::Result<()> {
            match self.fault {
                Fault::KillChildDuringCalls => {
                    let child = self.daemon(n, "child").await?;
                    let target = pid_of(&self.name("child")).await;
                    let calls = async {
                        let mut i = 0;
                        loop {
                            child.run(echo::call(i)).await?;
                            i += 1;
                        }
                    };
                    let fault = async {
                        self.pause().await;
                        kill(target);
                        std::future::pending::<tractor::Result<()>>().await
                    };
                    tokio::select! { r = calls => r, r = fault => r }
                }
                Fault::KillGrandchildDuringStream | Fault::KillMiddleDuringStream => {
                    let middle = n
                        .run_in_actor(self.name("middle"), relay::call(self.name("leaf")))
                        .await?;
                    let mut items = middle.result().await?;
                    let victim = match self.fault {
                        Fault::KillMiddleDuringStream => "middle",
                        _ => "leaf",
                    };
                    // The stream flows once the leaf is up.
                    let _ = pid_of(&self.name("leaf")).await;
                    items.next().await.transpose()?;
                    let target = pid_of(&self.name(victim)).await;
                    self.pause().await;
                    kill(target);
                    while let Some(item) = items.next().await {
                        item?;
                    }
                    Err(Error::other("the stream ended without an error"))
                }
                Fault::CutConnectionsMidStream => {
                    let child = self.daemon(n, "child").await?;
                    let mut items = child.open_stream(endless::call()).await?;
                    items.next().await.transpose()?;
                    self.pause().await;
                    let _ = child.run(sever::call()).await;
                    while let Some(item) = items.next().await {
                        item?;
                    }
                    Err(Error::other("the stream ended without an error"))
                }
                Fault::StopChildDuringCancel => {
                    let stopped = self.daemon(n, "stopped").await?;
                    self.daemon(n, "bystander").await?;
                    let target = pid_of(&self.name("stopped")).await;
                    stopped.run(echo::call(1)).await?;
                    self.pause().await;
                    signal(target, rustix::process::Signal::STOP);
                    Err(Error::other("the root gives up"))
                }
            }
        })
        .await;
        match outcome {
            Err(err) => err,
            Ok(()) => panic!(
                "round {} ({:?}) ended without an error",
                self.id, self.fault
            ),
        }
    }

    /// No process of the round alive, no name of it registered.
    async fn check_clean(&self) {
        let pids = PIDS.starting_with(&format!("{}_", self.id));
        for (name, pid) in &pids {
            assert!(
                exits_within(*pid, Duration::from_secs(2)).await,
                "round {} ({:?}): {name} ({pid}) is still alive",
                self.id,
                self.fault
            );
        }
        // Whether or not the registrar has heard of every exit yet, no
        // lookup answers an actor of the round.
        for (name, _) in &pids {
            assert!(
                tractor::find_actor(name).await.unwrap().is_none(),
                "round {} ({:?}): {name} is still found",
                self.id,
                self.fault
            );
        }
    }
}

/// Runs random rounds from the base seed (plus `offset`, one per test);
/// prints what it did.
async fn chaos(label: &str, offset: u64) {
    let (base, rounds) = tractor_tests::chaos_settings(25);
    let seed = base.wrapping_add(offset);
    println!("chaos {label}: seed {base} (replay with TRACTOR_CHAOS_SEED={base}), {rounds} rounds");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for index in 0..rounds {
        let round = Round {
            id: format!("{label}{index}"),
            fault: FAULTS[rng.usize(..FAULTS.len())],
            delay: rng.u64(0..20_000),
        };
        let err = tokio::time::timeout(ROUND_LIMIT, round.run())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "round {} ({:?}) hung (TRACTOR_CHAOS_SEED={base})",
                    round.id, round.fault
                )
            });
        assert!(
            !err.is_cancelled(),
            "round {}: the root got only Cancelled: {err:?}",
            round.id
        );
        let expected = round.expected();
        assert!(
            err.to_string().contains(&expected),
            "round {} ({:?}): the error does not name {expected}: {err:?} \
             (TRACTOR_CHAOS_SEED={base})",
            round.id,
            round.fault
        );
        round.check_clean().await;
        *counts.entry(format!("{:?}", round.fault)).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    println!("chaos {label}: {rounds} rounds, faults {counts:?}, leftover processes 0");
}

#[tractor::test(enable_modules = [module_path!()])]
async fn chaos_rounds_a() {
    chaos("a", 0).await;
}

#[tractor::test(enable_modules = [module_path!()])]
async fn chaos_rounds_b() {
    chaos("b", 1).await;
}
