//! A child that panics, for the panic tests: prints the error's
//! traceback the root received, then `took <ms>` (from the call going out
//! to the nursery returning with the error, the child reaped).

use std::time::Instant;

use tractor::ActorNursery;

#[tractor::rpc]
async fn explode() -> u32 {
    deep_inside(3)
}

#[inline(never)]
fn deep_inside(depth: u32) -> u32 {
    if depth == 0 {
        panic!("exploded deep inside");
    }
    deep_inside(depth - 1) + 1
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    let mut start = None;
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let bomb = n
            .start_actor("bomb")
            .enable_modules([module_path!()])
            .await?;
        start = Some(Instant::now());
        bomb.run(explode::call()).await.map(drop)
    })
    .await
    .unwrap_err();
    let took = start.map(|start| start.elapsed()).unwrap_or_default();
    for remote in err.remote_errors() {
        println!("{}", remote.traceback());
    }
    println!("took {}", took.as_millis());
    Ok(())
}
