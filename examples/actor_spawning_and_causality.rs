//! Actor spawning and causality: spawn an actor, run one function in it,
//! and read its result once the nursery has closed.
//!
//! ```text
//! cargo run --example actor_spawning_and_causality
//! ```
//!
//! The nursery returns only once `some_linguist` has finished its function
//! and exited, just as a task nursery waits for its tasks.

use tractor::ActorNursery;

#[tractor::rpc]
async fn cellar_door() -> String {
    // This runs in a new process: not the root actor.
    assert!(!tractor::current_actor().is_root());
    "Dang that's beautiful".to_string()
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    let portal = tractor::open_nursery(async |n: &ActorNursery| {
        n.run_in_actor("some_linguist", cellar_door::call()).await
    })
    .await?;

    // The nursery has closed: 'some_linguist' completed its main task and
    // is gone. Its result is still here.
    println!("{}", portal.result().await?);
    Ok(())
}
