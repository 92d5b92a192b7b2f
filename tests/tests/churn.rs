//! Discovery under churn: while actors of one name come and go (ended by
//! `cancel_actor` or SIGKILL), a sibling looking the name up every
//! millisecond always gets the live actor or none, never a connect error.

use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tractor::{ActorNursery, Error, RemoteStream};
use tractor_tests::{exits_within, kill};

const ROUNDS: usize = 36;

/// What one lookup answered.
#[derive(Debug, Serialize, Deserialize)]
enum Lookup {
    Found(uuid::Uuid),
    Nobody,
    Failed(String),
}

/// Looks `name` up every millisecond, for ever.
#[tractor::stream]
fn seek(name: String) -> impl Stream<Item = Lookup> {
    async_stream::stream! {
        loop {
            yield match tractor::find_actor(&name).await {
                Ok(Some(portal)) => Lookup::Found(portal.uid().uuid()),
                Ok(None) => Lookup::Nobody,
                Err(err) => Lookup::Failed(err.to_string()),
            };
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

/// Counts of what the seeker saw.
#[derive(Default, Debug)]
struct Seen {
    lookups: usize,
    found: usize,
    failures: Vec<String>,
}

impl Seen {
    /// Reads lookups until `done` says stop.
    async fn until(
        &mut self,
        lookups: &mut RemoteStream<Lookup>,
        done: impl Fn(&Lookup) -> bool,
    ) -> tractor::Result<()> {
        while let Some(lookup) = lookups.next().await {
            let lookup = lookup?;
            self.lookups += 1;
            match &lookup {
                Lookup::Found(_) => self.found += 1,
                Lookup::Failed(why) => self.failures.push(why.clone()),
                Lookup::Nobody => {}
            }
            if done(&lookup) {
                return Ok(());
            }
        }
        Err(Error::other("the seeker stopped"))
    }
}

#[tractor::test(enable_modules = [module_path!()])]
async fn lookups_under_churn_answer_the_live_actor_or_none() -> tractor::Result<()> {
    let seen = tractor::open_nursery(async |n: &ActorNursery| {
        let seeker = n
            .start_actor("seeker")
            .enable_modules([module_path!()])
            .await?;
        let mut lookups = seeker.open_stream(seek::call("churner".into())).await?;
        let mut seen = Seen::default();
        for round in 0..ROUNDS {
            let by_kill = round % 2 == 1;
            // Each churner gets a nursery of its own: a killed one fails it,
            // which is expected here.
            let ended = tractor::open_nursery(async |n: &ActorNursery| {
                let churner = n
                    .start_actor("churner")
                    .enable_modules([module_path!()])
                    .await?;
                let uuid = churner.uid().uuid();
                seen.until(
                    &mut lookups,
                    |l| matches!(l, Lookup::Found(found) if *found == uuid),
                )
                .await?;
                if by_kill {
                    let pid = churner.run(pid::call()).await?;
                    kill(pid);
                    assert!(exits_within(pid, Duration::from_secs(5)).await);
                } else {
                    assert!(churner.cancel_actor().await?, "acknowledged");
                }
                // The name is gone once the seeker sees nobody.
                seen.until(&mut lookups, |l| matches!(l, Lookup::Nobody))
                    .await
            })
            .await;
            match ended {
                Ok(()) => assert!(!by_kill, "round {round}: a killed actor is an error"),
                Err(Error::ActorDied { actor, .. }) if by_kill => {
                    assert_eq!(actor.name(), "churner")
                }
                Err(err) => return Err(err),
            }
        }
        drop(lookups);
        n.cancel().await?;
        Ok(seen)
    })
    .await?;
    println!(
        "churn: {ROUNDS} rounds, {} lookups, {} found, {} failed",
        seen.lookups,
        seen.found,
        seen.failures.len()
    );
    assert!(seen.found >= ROUNDS);
    assert!(
        seen.failures.is_empty(),
        "lookups failed under churn: {:?}",
        seen.failures
    );
    Ok(())
}
