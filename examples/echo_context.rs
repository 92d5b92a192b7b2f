//! A context: a two-way dialog with a task in another actor.
//!
//! `#[tractor::context]` makes a function the far end of a dialog. Its
//! caller opens it with `portal.open_context(..)`, which resolves once the
//! function has called `ctx.started(..)` and hands over the value it
//! started with; then both sides may open the two-way stream, and the
//! caller finally takes the function's return value with `result()`.
//!
//! ```text
//! cargo run --example echo_context
//! ```

use futures::{SinkExt, StreamExt};
use tractor::{ActorNursery, Context};

/// Runs in the daemon: greets its caller, then shouts back every line it
/// gets until the caller closes its side; returns how many it shouted.
///
/// `Context<S, I, O>`: it starts with a `String` (S), receives `String`s
/// (I) and sends `String`s (O).
#[tractor::context]
async fn shout_back(ctx: Context<String, String, String>, name: String) -> tractor::Result<u64> {
    // unblocks the caller's `open_context`
    ctx.started(format!("hello {name}, say something")).await?;

    let mut stream = ctx.open_stream().await?;
    let mut shouted = 0;
    // `None` once the caller has closed its sending side
    while let Some(line) = stream.next().await {
        stream.send(line?.to_uppercase()).await?;
        shouted += 1;
    }
    // returning ends our side of the stream and becomes the caller's result
    Ok(shouted)
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = n
            .start_actor("shouter")
            .enable_modules([module_path!()])
            .await?;

        // reads like calling `shout_back` locally; the greeting is what
        // it passed to `started`
        let (cx, greeting) = portal
            .open_context(shout_back::call("donny".into()))
            .await?;
        println!("{greeting}");

        let mut stream = cx.open_stream().await?;
        for line in ["ya", "the dude abides", "over the line!"] {
            stream.send(line.to_string()).await?;
            let echo = stream
                .next()
                .await
                .ok_or_else(|| tractor::Error::other("the shouter hung up"))??;
            println!("{line} -> {echo}");
        }
        // ends our sending only: the shouter's loop sees `None` and returns
        stream.close().await?;
        println!("shouted back {} lines", cx.result().await?);

        // the daemon serves until cancelled
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}
