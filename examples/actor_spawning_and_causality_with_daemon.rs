//! A daemon actor: `start_actor` spawns an actor that serves remote calls
//! until it is cancelled.
//!
//! ```text
//! cargo run --example actor_spawning_and_causality_with_daemon
//! ```

use tractor::ActorNursery;

/// A question asked in a dark theatre, in a tangent (errr, I mean
/// different) process.
#[tractor::rpc]
async fn movie_theatre_question() -> String {
    "have you ever seen a portal?".to_string()
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = n
            .start_actor("frank")
            // let the actor run functions from this module
            .enable_modules([module_path!()])
            .await?;

        println!("{}", portal.run(movie_theatre_question::call()).await?);
        // call the actor a second time
        println!("{}", portal.run(movie_theatre_question::call()).await?);

        // the nursery would wait here forever for the daemon "frank" to
        // finish; it never does until cancelled
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}
