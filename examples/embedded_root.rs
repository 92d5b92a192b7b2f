//! A root started from code: no attribute on `main`, every option given
//! with `tractor::Root::builder()`, the tree's secret included.
//!
//! ```text
//! cargo run --example embedded_root
//! ```
//!
//! Programs that are to share a tree share its secret; here it comes from
//! code (read it from wherever your program keeps secrets), so
//! `TRACTOR_SECRET` in the environment, if any, is not used. The squares
//! are computed by two small worker actors of one thread each.

use tractor::{ActorNursery, StartMethod};

#[tractor::rpc]
async fn square(n: u64) -> u64 {
    n * n
}

/// A stand-in for loading a secret from a vault or a file only this
/// program can read; never hard-code one in a real program.
fn load_secret() -> Vec<u8> {
    b"the embedded root example's secret".to_vec()
}

fn main() -> tractor::Result<()> {
    tractor::Root::builder()
        .secret(load_secret())
        .worker_threads(1)
        .start_method(StartMethod::ForkServer)
        .max_concurrent_calls(64)
        .run(async {
            tractor::open_nursery(async |n: &ActorNursery| {
                let mut workers = Vec::new();
                for i in 0..2 {
                    let worker = n
                        .start_actor(format!("worker_{i}"))
                        .enable_modules([module_path!()])
                        .await?;
                    workers.push(worker);
                }
                let mut total = 0;
                for n in 1..=10u64 {
                    let worker = &workers[n as usize % workers.len()];
                    total += worker.run(square::call(n)).await?;
                }
                println!("the sum of the first ten squares is {total}");
                n.cancel().await
            })
            .await
        })
}
