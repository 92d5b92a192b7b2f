//! A full fledged streaming service: four actors in four processes.
//! Two streamers each produce the same feed; an aggregator consumes both,
//! de-duplicates, and streams the unique values to the root, which checks
//! that it got every value once, in order.
//!
//! ```text
//! cargo run --example full_fledged_streaming_service
//! ```

use std::collections::HashSet;
use std::time::Instant;

use futures::{Stream, StreamExt};
use tractor::{ActorNursery, StreamContext};

/// The streamers: `streamer_1` and `streamer_2`.
#[tractor::stream]
fn stream_data(seed: u64) -> impl Stream<Item = u64> {
    async_stream::stream! {
        for i in 0..seed {
            yield i;
            tokio::task::yield_now().await; // let the scheduler in
        }
    }
}

/// The aggregator: checks that the two feeds agree and streams a single
/// copy of each value to its parent.
#[tractor::stream]
async fn aggregate(ctx: StreamContext<u64>, seed: u64) -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let mut feeds = Vec::new();
        for i in 1..=2 {
            let portal = n
                .start_actor(format!("streamer_{i}"))
                .enable_modules([module_path!()])
                .await?;
            feeds.push(portal.open_stream(stream_data::call(seed)).await?);
        }

        let mut merged = futures::stream::select_all(feeds);
        let mut unique = HashSet::new();
        while let Some(value) = merged.next().await {
            let value = value?;
            if unique.insert(value) {
                // yield upwards to the spawning parent actor
                ctx.send_yield(value).await?;
            }
        }
        println!("FINISHED ITERATING in aggregator");

        n.cancel().await?;
        println!("WAITING on ActorNursery to finish");
        Ok(())
    })
    .await?;
    println!("AGGREGATOR COMPLETE!");
    Ok(())
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    let seed = 1000;
    let pre_start = Instant::now();
    let result_stream = tractor::open_nursery(async |n: &ActorNursery| {
        let portal = n
            .start_actor("aggregator")
            .enable_modules([module_path!()])
            .await?;

        let start = Instant::now();
        // reads like calling `aggregate` locally
        let mut stream = portal.open_stream(aggregate::call(seed)).await?;
        let mut result_stream = Vec::new();
        while let Some(value) = stream.next().await {
            result_stream.push(value?);
        }

        assert!(portal.cancel_actor().await?, "the aggregator acknowledged");
        println!("STREAM TIME = {:?}", start.elapsed());
        println!("STREAM + SPAWN TIME = {:?}", pre_start.elapsed());
        Ok(result_stream)
    })
    .await?;
    assert_eq!(result_stream, (0..seed).collect::<Vec<_>>());
    println!("received all {seed} values, once each, in order");
    Ok(())
}
