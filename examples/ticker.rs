//! A service that runs until you stop it: a daemon streams a tick every
//! 100 ms and the root prints them. Press Ctrl-C: the whole tree is
//! cancelled in order (the daemon is asked to stop, answers, exits, and is
//! reaped) and the program exits with status 130. A second Ctrl-C kills
//! everything at once.
//!
//! ```text
//! cargo run --example ticker
//! ```

use std::time::Duration;

use futures::{Stream, StreamExt};
use tractor::ActorNursery;

#[tractor::stream]
fn ticks(every_ms: u64) -> impl Stream<Item = u64> {
    async_stream::stream! {
        let mut interval = tokio::time::interval(Duration::from_millis(every_ms));
        for tick in 0.. {
            interval.tick().await;
            yield tick;
        }
    }
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let clock = n
            .start_actor("clock")
            .enable_modules([module_path!()])
            .await?;
        let mut ticks = clock.open_stream(ticks::call(100)).await?;
        while let Some(tick) = ticks.next().await {
            println!("tick {}", tick?);
        }
        Ok(())
    })
    .await
}
