//! A daemon to attack, for the hostile-input tests: prints
//! `victim <socket> <pid>` and `root <pid> <socket>`, then serves commands on stdin:
//!
//! - `ping`: calls the victim and prints `pong <n>`;
//! - `consume <name>`: the root finds actor `<name>` (an attacker that
//!   registered), reads its stream `mallory::numbers` with a window of 4
//!   items and 1 KiB,
//!   and prints `consumed <n> items, then <error or end>`; then it calls
//!   `mallory::answer` and prints `answer <result>`.
//!
//! At end of input it stops the tree.

use futures::{Stream, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tractor::ActorNursery;

#[tractor::rpc]
async fn echo(n: u64) -> u64 {
    n
}

#[tractor::rpc]
async fn echo_bytes(data: Vec<u8>) -> Vec<u8> {
    data
}

#[tractor::rpc]
async fn sleep_forever() {
    std::future::pending::<()>().await;
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

/// Endless items of `size` bytes each.
#[tractor::stream]
fn firehose(size: u32) -> impl Stream<Item = Vec<u8>> {
    let item = vec![7u8; size as usize];
    futures::stream::repeat(item)
}

async fn consume(name: &str) -> tractor::Result<()> {
    let Some(mallory) = tractor::find_actor(name).await? else {
        println!("consumed nothing: {name} is not registered");
        return Ok(());
    };
    let numbers: tractor::StreamCall<u64> = tractor::StreamCall::by_name("mallory::numbers", &())
        .window(4)
        .window_bytes(1024);
    let mut items = mallory.open_stream(numbers).await?;
    let mut count = 0;
    let mut end = "the end".to_string();
    while let Some(item) = items.next().await {
        match item {
            Ok(_) => count += 1,
            Err(err) => end = err.to_string(),
        }
    }
    println!("consumed {count} items, then {end}");
    let answer: tractor::Call<u64> = tractor::Call::by_name("mallory::answer", &());
    match mallory.run(answer).await {
        Ok(value) => println!("answer {value}"),
        Err(err) => println!("answer failed: {err}"),
    }
    Ok(())
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let victim = n
            .start_actor("victim")
            .enable_modules([module_path!()])
            .await?;
        let pid = victim.run(pid::call()).await?;
        let socket = |path: Option<std::path::PathBuf>| path.unwrap().display().to_string();
        println!("victim {} {pid}", socket(victim.local_socket()));
        let root = tractor::current_actor();
        println!(
            "root {} {}",
            std::process::id(),
            socket(root.local_socket())
        );
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut count = 0;
        while let Some(line) = lines.next_line().await? {
            if line == "ping" {
                println!("pong {}", victim.run(echo::call(count)).await?);
                count += 1;
            } else if let Some(name) = line.strip_prefix("consume ") {
                consume(name).await?;
            }
        }
        victim.cancel_actor().await?;
        Ok(())
    })
    .await
}
