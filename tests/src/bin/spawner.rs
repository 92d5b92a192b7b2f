//! A root that spawns on command, for the tests that flood it: prints
//! `root <pid> <socket>`, then for each line `spawn <n>` on stdin starts `n`
//! daemons at once, calls each, cancels them all and prints `spawned <n>`
//! (or `failed <error>`). At end of input it stops.

use tokio::io::{AsyncBufReadExt, BufReader};
use tractor::ActorNursery;

#[tractor::rpc]
async fn ping() -> u32 {
    std::process::id()
}

async fn spawn_many(count: usize) -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let spawns = (0..count).map(|i| async move {
            let daemon = n
                .start_actor(format!("worker{i}"))
                .enable_modules([module_path!()])
                .await?;
            daemon.run(ping::call()).await?;
            Ok::<_, tractor::Error>(daemon)
        });
        let daemons = futures::future::try_join_all(spawns).await?;
        drop(daemons);
        n.cancel().await
    })
    .await
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    let me = tractor::current_actor();
    let socket = me.local_socket().expect("a local socket");
    println!("root {} {}", std::process::id(), socket.display());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let Some(count) = line.strip_prefix("spawn ") else {
            continue;
        };
        let count = count.parse().map_err(tractor::Error::other)?;
        match spawn_many(count).await {
            Ok(()) => println!("spawned {count}"),
            Err(err) => println!("failed {err}"),
        }
    }
    Ok(())
}
