//! A three-level tree for tests that kill part of it: the root runs
//! `depth1`, which runs `depth0`. Every actor prints `actor <name> <pid>`
//! on stdout, then they all wait forever.

use tractor::ActorNursery;

fn announce() {
    println!(
        "actor {} {}",
        tractor::current_actor().name(),
        std::process::id()
    );
}

#[tractor::rpc]
async fn branch(depth: u32) -> tractor::Result<()> {
    announce();
    if depth == 0 {
        return std::future::pending().await;
    }
    tractor::open_nursery(async |n: &ActorNursery| {
        n.run_in_actor(format!("depth{}", depth - 1), branch::call(depth - 1))
            .await?;
        std::future::pending().await
    })
    .await
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    announce();
    tractor::open_nursery(async |n: &ActorNursery| {
        n.run_in_actor("depth1", branch::call(1)).await?;
        std::future::pending().await
    })
    .await
}
