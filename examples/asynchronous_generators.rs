//! Asynchronous generators: a parent streams for one second from a stream
//! running in another actor, then cancels it.
//!
//! ```text
//! cargo run --example asynchronous_generators
//! ```

use std::time::Duration;

use futures::{Stream, StreamExt};
use tractor::ActorNursery;

/// Runs in the `donny` actor; every value goes over the channel to the
/// parent.
#[tractor::stream]
fn stream_forever() -> impl Stream<Item = String> {
    async_stream::stream! {
        loop {
            yield "I can see these little future bubble things".to_string();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = n
            .start_actor("donny")
            .enable_modules([module_path!()])
            .await?;

        // This loop streams values from the stream above, running in a
        // separate process, for one second.
        let mut stream = portal.open_stream(stream_forever::call()).await?;
        let streamed = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(letter) = stream.next().await {
                println!("{}", letter?);
            }
            Ok::<_, tractor::Error>(())
        })
        .await;
        assert!(streamed.is_err(), "the stream never ends on its own");
        // Dropping the stream cancels the remote generator.
        drop(stream);
        println!("stream terminated");

        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}
