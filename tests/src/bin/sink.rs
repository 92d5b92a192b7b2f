//! A daemon to attack, for the hostile-input tests: prints
//! `victim <addr> <pid>`, then answers each `ping` line on stdin by calling
//! the victim and printing `pong <n>`; at end of input it stops the tree.

use tokio::io::{AsyncBufReadExt, BufReader};
use tractor::ActorNursery;

#[tractor::rpc]
async fn echo(n: u64) -> u64 {
    n
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let victim = n
            .start_actor("victim")
            .enable_modules([module_path!()])
            .await?;
        let pid = victim.run(pid::call()).await?;
        println!("victim {} {pid}", victim.addr().unwrap_or_default());
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut count = 0;
        while let Some(line) = lines.next_line().await? {
            if line == "ping" {
                println!("pong {}", victim.run(echo::call(count)).await?);
                count += 1;
            }
        }
        victim.cancel_actor().await?;
        Ok(())
    })
    .await
}
