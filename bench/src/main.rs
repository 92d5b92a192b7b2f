//! Quick figures for tractor's core costs, each a median over many runs:
//!
//! - spawn: `run_in_actor` of a trivial function until `result()` returns,
//!   and the whole nursery (spawn, result, cancel, reap);
//! - call: sequential `portal.run` round trips of a trivial function;
//! - stream: u64 items and 1 KiB items, in messages and bytes per second;
//!
//! each next to the floor it is compared with, measured in the same run.
//!
//! ```text
//! cargo run --release -p tractor-bench
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tractor::{ActorNursery, Portal};

#[tractor::rpc]
async fn noop() -> u64 {
    0
}

#[tractor::stream]
fn numbers(n: u64) -> impl Stream<Item = u64> {
    futures::stream::iter(0..n)
}

#[tractor::stream]
fn kib_items(n: u64) -> impl Stream<Item = Bytes> {
    let item = Bytes::from(vec![7u8; KIB]);
    futures::stream::iter(0..n).map(move |_| item.clone())
}

const SPAWNS: usize = 200;
const CALLS: usize = 20_000;
const U64_ITEMS: u64 = 5_000_000;
const KIB_ITEMS: u64 = 500_000;
const KIB: usize = 1024;
const STREAM_RUNS: usize = 5;

/// Items per second and bytes per second of one stream run.
struct Rate {
    items_per_sec: f64,
    bytes_per_sec: f64,
}

fn rate(items: u64, bytes: u64, took: Duration) -> Rate {
    Rate {
        items_per_sec: items as f64 / took.as_secs_f64(),
        bytes_per_sec: bytes as f64 / took.as_secs_f64(),
    }
}

fn median_rate(mut rates: Vec<Rate>) -> Rate {
    rates.sort_by(|a, b| a.items_per_sec.total_cmp(&b.items_per_sec));
    rates.swap_remove(rates.len() / 2)
}

async fn stream_u64(portal: &Portal) -> tractor::Result<Rate> {
    let start = Instant::now();
    let mut stream = portal.open_stream(numbers::call(U64_ITEMS)).await?;
    let mut expected = 0;
    while let Some(n) = stream.next().await {
        assert_eq!(n?, expected);
        expected += 1;
    }
    assert_eq!(expected, U64_ITEMS);
    Ok(rate(U64_ITEMS, U64_ITEMS * 8, start.elapsed()))
}

async fn stream_kib(portal: &Portal) -> tractor::Result<Rate> {
    let start = Instant::now();
    let mut stream = portal.open_stream(kib_items::call(KIB_ITEMS)).await?;
    let mut count = 0;
    while let Some(item) = stream.next().await {
        assert_eq!(item?.len(), KIB);
        count += 1;
    }
    assert_eq!(count, KIB_ITEMS);
    Ok(rate(KIB_ITEMS, KIB_ITEMS * KIB as u64, start.elapsed()))
}

/// Set in the environment of the raw streaming producer process.
const RAW_STREAM_PRODUCER: &str = "TRACTOR_BENCH_RAW_STREAM_PRODUCER";

/// The floor for streaming: one process writes length-prefixed postcard
/// frames (batched into large writes), the other reads and decodes them.
async fn raw_stream(item_size: usize, items: u64) -> tractor::Result<Rate> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut producer = std::process::Command::new(std::env::current_exe()?)
        .env(
            RAW_STREAM_PRODUCER,
            format!("{} {item_size} {items}", listener.local_addr()?),
        )
        .spawn()?;
    let (mut stream, _) = listener.accept().await?;
    let start = Instant::now();
    let mut buf = bytes::BytesMut::with_capacity(1 << 20);
    let mut received = 0u64;
    while received < items {
        if stream.read_buf(&mut buf).await? == 0 {
            break;
        }
        while buf.len() >= 4 {
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame = buf.split_to(4 + len);
            if item_size == 0 {
                let _: u64 = postcard::from_bytes(&frame[4..]).map_err(tractor::Error::other)?;
            } else {
                let item: Bytes =
                    postcard::from_bytes(&frame[4..]).map_err(tractor::Error::other)?;
                assert_eq!(item.len(), item_size);
            }
            received += 1;
        }
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(1 << 20);
        }
    }
    let took = start.elapsed();
    producer.wait()?;
    assert_eq!(received, items);
    let item_bytes = if item_size == 0 { 8 } else { item_size as u64 };
    Ok(rate(items, items * item_bytes, took))
}

async fn raw_stream_producer(spec: &str) -> tractor::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut parts = spec.split(' ');
    let (Some(addr), Some(size), Some(items)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(tractor::Error::other("bad producer spec"));
    };
    let size: usize = size.parse().map_err(tractor::Error::other)?;
    let items: u64 = items.parse().map_err(tractor::Error::other)?;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let payload = Bytes::from(vec![7u8; size]);
    let mut scratch = vec![0u8; size + 16];
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..items {
        let encoded = if size == 0 {
            postcard::to_slice(&i, &mut scratch)
        } else {
            postcard::to_slice(&payload, &mut scratch)
        }
        .map_err(tractor::Error::other)?;
        buf.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        buf.extend_from_slice(encoded);
        if buf.len() >= 1 << 16 {
            stream.write_all(&buf).await?;
            buf.clear();
        }
    }
    stream.write_all(&buf).await?;
    stream.shutdown().await?;
    Ok(())
}

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
    if let Ok(spec) = std::env::var(RAW_STREAM_PRODUCER) {
        return raw_stream_producer(&spec).await;
    }
    // `tractor-bench stream` runs only the stream figures (for profiling).
    let only_streams = std::env::args().nth(1).as_deref() == Some("stream");
    if only_streams {
        return streams().await;
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
    println!();
    streams().await
}

async fn streams() -> tractor::Result<()> {
    let mut u64_rates = Vec::new();
    let mut kib_rates = Vec::new();
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = n
            .start_actor("streamer")
            .enable_modules([module_path!()])
            .await?;
        for _ in 0..STREAM_RUNS {
            u64_rates.push(stream_u64(&portal).await?);
            kib_rates.push(stream_kib(&portal).await?);
        }
        portal.cancel_actor().await?;
        Ok(())
    })
    .await?;
    let mut raw_u64 = Vec::new();
    let mut raw_kib = Vec::new();
    for _ in 0..STREAM_RUNS {
        raw_u64.push(raw_stream(0, U64_ITEMS).await?);
        raw_kib.push(raw_stream(KIB, KIB_ITEMS).await?);
    }
    let show = |what: &str, rate: Rate| {
        println!(
            "| {what} | {:.2} M msgs/s | {:.0} MB/s |",
            rate.items_per_sec / 1e6,
            rate.bytes_per_sec / 1e6
        );
    };
    println!("| stream (median of {STREAM_RUNS}) | messages | payload |");
    println!("| --- | --- | --- |");
    show(
        "floor: raw length-prefixed postcard, u64",
        median_rate(raw_u64),
    );
    show("RemoteStream<u64>", median_rate(u64_rates));
    show(
        "floor: raw length-prefixed postcard, 1 KiB",
        median_rate(raw_kib),
    );
    show("RemoteStream<Bytes> of 1 KiB", median_rate(kib_rates));
    Ok(())
}
