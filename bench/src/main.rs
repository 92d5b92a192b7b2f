//! Quick figures for tractor's core costs, each a median over many runs:
//!
//! - spawn: `run_in_actor` of a trivial function until `result()` returns,
//!   and the whole nursery (spawn, result, cancel, reap);
//! - call: sequential `portal.run` round trips of a trivial function.
//!
//! ```text
//! cargo run --release -p tractor-bench
//! ```

use std::time::{Duration, Instant};

use tractor::ActorNursery;

#[tractor::rpc]
async fn noop() -> u64 {
    0
}

const SPAWNS: usize = 200;
const CALLS: usize = 20_000;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

/// Set in the environment of the raw ping-pong server process.
const PINGPONG_SERVER: &str = "TRACTOR_BENCH_PINGPONG_SERVER";

/// The floor for a round trip: two processes, tokio tasks, 8-byte
/// messages over loopback TCP, nothing else.
async fn raw_ping_pong() -> tractor::Result<Vec<Duration>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .env(PINGPONG_SERVER, listener.local_addr()?.to_string())
        .spawn()?;
    let (mut stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 8];
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS + 1000 {
        let start = Instant::now();
        stream.write_all(&(i as u64).to_le_bytes()).await?;
        stream.read_exact(&mut buf).await?;
        if i >= 1000 {
            samples.push(start.elapsed());
        }
    }
    drop(stream);
    server.wait()?;
    Ok(samples)
}

async fn ping_pong_server(addr: &str) -> tractor::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    tokio::spawn(async move {
        let mut buf = [0u8; 8];
        while stream.read_exact(&mut buf).await.is_ok() {
            if stream.write_all(&buf).await.is_err() {
                break;
            }
        }
    })
    .await
    .map_err(tractor::Error::other)
}

#[tractor::main(enable_modules = [module_path!()])]
async fn main() -> tractor::Result<()> {
    if let Ok(addr) = std::env::var(PINGPONG_SERVER) {
        return ping_pong_server(&addr).await;
    }
    let mut floor = raw_ping_pong().await?;
    let mut to_result = Vec::with_capacity(SPAWNS);
    let mut whole = Vec::with_capacity(SPAWNS);
    for _ in 0..SPAWNS {
        let start = Instant::now();
        let mut got = Duration::ZERO;
        tractor::open_nursery(async |n: &ActorNursery| {
            let portal = n.run_in_actor("noop", noop::call()).await?;
            portal.result().await?;
            got = start.elapsed();
            Ok(())
        })
        .await?;
        to_result.push(got);
        whole.push(start.elapsed());
    }

    let mut round_trips = Vec::with_capacity(CALLS);
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = n
            .start_actor("echo")
            .enable_modules([module_path!()])
            .await?;
        for _ in 0..1000 {
            portal.run(noop::call()).await?;
        }
        for _ in 0..CALLS {
            let start = Instant::now();
            portal.run(noop::call()).await?;
            round_trips.push(start.elapsed());
        }
        portal.cancel_actor().await?;
        Ok(())
    })
    .await?;

    println!("| measure | median | p99 |");
    println!("| --- | --- | --- |");
    println!(
        "| run_in_actor spawn-to-result ({SPAWNS} runs) | {:?} | {:?} |",
        median(&mut to_result),
        percentile(&mut to_result, 0.99)
    );
    println!(
        "| nursery with one run_in_actor, spawn to reaped | {:?} | {:?} |",
        median(&mut whole),
        percentile(&mut whole, 0.99)
    );
    println!(
        "| floor: raw two-process tokio TCP ping-pong | {:?} | {:?} |",
        median(&mut floor),
        percentile(&mut floor, 0.99)
    );
    println!(
        "| sequential portal.run round trip ({CALLS} calls) | {:?} | {:?} |",
        median(&mut round_trips),
        percentile(&mut round_trips, 0.99)
    );
    Ok(())
}
