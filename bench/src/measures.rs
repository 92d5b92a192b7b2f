//! What tractor costs: spawning, calling, streaming, tearing down, and
//! the memory of an idle actor. Every measure runs real actors.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use tractor::{ActorNursery, Context, Error, Portal, StartMethod, Supervisor};

use crate::stats::Rate;

#[tractor::rpc]
async fn noop() -> u64 {
    0
}

#[tractor::rpc]
async fn fail() -> tractor::Result<()> {
    Err(Error::other("failing on purpose"))
}

#[tractor::rpc]
async fn explode() -> u64 {
    panic!("exploding on purpose")
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

#[tractor::stream]
fn numbers(n: u64) -> impl Stream<Item = u64> {
    futures::stream::iter(0..n)
}

#[tractor::stream]
fn kib_items(n: u64) -> impl Stream<Item = Bytes> {
    let item = Bytes::from(vec![7u8; 1024]);
    futures::stream::iter(0..n).map(move |_| item.clone())
}

/// Echoes every item back.
#[tractor::context]
async fn echo(ctx: Context<(), u64, u64>) -> tractor::Result<()> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    while let Some(item) = stream.next().await {
        stream.send(item?).await?;
    }
    Ok(())
}

/// Sends `0..n` to the caller, as fast as credit allows.
#[tractor::context]
async fn send_numbers(ctx: Context<(), (), u64>, n: u64) -> tractor::Result<()> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    stream
        .send_all(&mut futures::stream::iter(0..n).map(Ok))
        .await?;
    Ok(())
}

/// Takes what the caller sends, checking the order; returns the count.
#[tractor::context]
async fn take_numbers(ctx: Context<(), u64, ()>) -> tractor::Result<u64> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    let mut expected = 0;
    while let Some(n) = stream.next().await {
        assert_eq!(n?, expected);
        expected += 1;
    }
    Ok(expected)
}

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name).enable_modules([module_path!()]).await
}

/// `run_in_actor` of a trivial function until `result()` returns.
pub async fn spawn_to_result(runs: usize, method: StartMethod) -> tractor::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        tractor::open_nursery(async |n: &ActorNursery| {
            let start = Instant::now();
            let portal = n
                .run_in_actor("noop", noop::call())
                .start_method(method)
                .await?;
            portal.result().await?;
            samples.push(start.elapsed());
            Ok(())
        })
        .await?;
    }
    Ok(samples)
}

/// The whole cycle a user pays for "run this in a process": from
/// `open_nursery` through `run_in_actor` and `result()` to the nursery
/// returned, the child reaped. Each sample also says where the cycle was
/// when the spawn returned (the child connected back) and when the result
/// came, so the rest is the teardown.
/// `apart`: an idle pause between cycles (not timed), as between the
/// spawns of a program that does other work in between.
pub async fn spawn_whole_cycle(
    runs: usize,
    method: StartMethod,
    apart: Duration,
) -> tractor::Result<Vec<Cycle>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        if !apart.is_zero() {
            tokio::time::sleep(apart).await;
        }
        let start = Instant::now();
        let (connected, answered) = tractor::open_nursery(async |n: &ActorNursery| {
            let portal = n
                .run_in_actor("noop", noop::call())
                .start_method(method)
                .await?;
            let connected = start.elapsed();
            portal.result().await?;
            Ok((connected, start.elapsed()))
        })
        .await?;
        samples.push(Cycle {
            connected,
            answered,
            reaped: start.elapsed(),
        });
    }
    Ok(samples)
}

/// The spawn section's headline samples, gathered in rounds: each round
/// takes a few of each in turn, so that they all see the machine alike.
#[derive(Default)]
pub struct Interleaved {
    /// Bare re-exec, connected back.
    pub floor: Vec<Duration>,
    /// The same, on until reaped.
    pub floor_reaped: Vec<Duration>,
    /// procspawn's spawn and join.
    pub peer: Vec<Duration>,
    /// Whole cycles, back to back, with `exec`.
    pub exec: Vec<Cycle>,
    /// The same with the fork server.
    pub forkserver: Vec<Cycle>,
}

impl Interleaved {
    /// One round: `runs` of each.
    pub async fn round(&mut self, runs: usize) -> tractor::Result<()> {
        let (floor, reaped) = crate::floors::reexec(runs).await?;
        self.floor.extend(floor);
        self.floor_reaped.extend(reaped);
        self.peer.extend(crate::floors::procspawn_join(runs).await?);
        self.exec
            .extend(spawn_whole_cycle(runs, StartMethod::Exec, Duration::ZERO).await?);
        self.forkserver
            .extend(spawn_whole_cycle(runs, StartMethod::ForkServer, Duration::ZERO).await?);
        Ok(())
    }
}

/// One whole spawn cycle, each time from its start.
pub struct Cycle {
    /// The spawn returned: the child connected back.
    pub connected: Duration,
    /// `result()` returned.
    pub answered: Duration,
    /// The nursery returned, the child reaped.
    pub reaped: Duration,
}

/// Restart latency under a one_for_one supervisor: from the SIGKILL of a
/// daemon to the first call that its new process answers through the
/// portal the spawn returned (calls that reach the dying process, or fail
/// with it, are tried again).
pub async fn restart_latency(runs: usize, method: StartMethod) -> tractor::Result<Vec<Duration>> {
    let supervisor = Supervisor::one_for_one().max_restarts(u32::MAX, Duration::from_secs(1));
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let portal = n
            .start_actor("restarted")
            .enable_modules([module_path!()])
            .start_method(method)
            .await?;
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let old = portal.run(pid::call()).await?;
            let start = Instant::now();
            let victim =
                rustix::process::Pid::from_raw(old as i32).ok_or_else(|| Error::other("pid 0"))?;
            rustix::process::kill_process(victim, rustix::process::Signal::KILL)
                .map_err(|err| Error::other(format!("kill {old}: {err}")))?;
            loop {
                match portal.run(pid::call()).await {
                    Ok(new) if new != old => break,
                    Ok(_) | Err(Error::Disconnected { .. }) => continue,
                    Err(err) => return Err(err),
                }
            }
            samples.push(start.elapsed());
        }
        n.cancel().await?;
        Ok(samples)
    })
    .await
}

/// A daemon whose call panics: from the call going out to the nursery
/// returned with the error, the daemon reaped.
pub async fn panic_teardown(runs: usize) -> tractor::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut start = None;
        let outcome = tractor::open_nursery(async |n: &ActorNursery| {
            let bomb = daemon(n, "bomb").await?;
            start = Some(Instant::now());
            bomb.run(explode::call()).await
        })
        .await;
        let start = start.expect("the call went out");
        assert!(outcome.is_err());
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// `actors` run_in_actor children spawned at once, each answering, until
/// the nursery has reaped them all.
pub async fn spawn_many(
    actors: usize,
    runs: usize,
    method: StartMethod,
) -> tractor::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        tractor::open_nursery(async |n: &ActorNursery| {
            let spawns = (0..actors).map(|i| {
                n.run_in_actor(format!("noop_{i}"), noop::call())
                    .start_method(method)
                    .into_future()
            });
            let portals = futures::future::try_join_all(spawns).await?;
            futures::future::try_join_all(portals.iter().map(|p| p.result())).await?;
            Ok(())
        })
        .await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// Sequential round trips, and calls per second with `in_flight` calls
/// outstanding.
pub async fn calls(
    rounds: usize,
    total: usize,
    in_flight: usize,
) -> tractor::Result<(Vec<Duration>, f64)> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "echo").await?;
        for _ in 0..1000 {
            portal.run(noop::call()).await?;
        }
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            portal.run(noop::call()).await?;
            samples.push(start.elapsed());
        }
        let start = Instant::now();
        let answered = futures::stream::iter(0..total)
            .map(|_| portal.run(noop::call()))
            .buffer_unordered(in_flight)
            .fold(0usize, async |count, answer| {
                count + usize::from(answer.is_ok())
            })
            .await;
        let per_sec = answered as f64 / start.elapsed().as_secs_f64();
        assert_eq!(answered, total);
        portal.cancel_actor().await?;
        Ok((samples, per_sec))
    })
    .await
}

/// Stream throughput of u64 items and of 1 KiB items.
pub async fn streams(
    runs: usize,
    u64_items: u64,
    kib_items_count: u64,
) -> tractor::Result<(Vec<Rate>, Vec<Rate>)> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "streamer").await?;
        let mut small = Vec::new();
        let mut large = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let mut stream = portal.open_stream(numbers::call(u64_items)).await?;
            let mut expected = 0;
            while let Some(n) = stream.next().await {
                assert_eq!(n?, expected);
                expected += 1;
            }
            assert_eq!(expected, u64_items);
            small.push(Rate::new(u64_items, u64_items * 8, start.elapsed()));

            let start = Instant::now();
            let mut stream = portal.open_stream(kib_items::call(kib_items_count)).await?;
            let mut count = 0;
            while let Some(item) = stream.next().await {
                assert_eq!(item?.len(), 1024);
                count += 1;
            }
            assert_eq!(count, kib_items_count);
            large.push(Rate::new(count, count * 1024, start.elapsed()));
        }
        portal.cancel_actor().await?;
        Ok((small, large))
    })
    .await
}

/// `MsgStream` throughput of u64 items, each way: the function sending to
/// its caller, and the caller sending to the function.
pub async fn msg_streams(runs: usize, items: u64) -> tractor::Result<(Vec<Rate>, Vec<Rate>)> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "dialog").await?;
        let mut to_caller = Vec::new();
        let mut to_callee = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let (cx, ()) = portal.open_context(send_numbers::call(items)).await?;
            let mut stream = cx.open_stream().await?;
            let mut expected = 0;
            while let Some(n) = stream.next().await {
                assert_eq!(n?, expected);
                expected += 1;
            }
            cx.result().await?;
            assert_eq!(expected, items);
            to_caller.push(Rate::new(items, items * 8, start.elapsed()));

            let start = Instant::now();
            let (cx, ()) = portal.open_context(take_numbers::call()).await?;
            let mut stream = cx.open_stream().await?;
            stream
                .send_all(&mut futures::stream::iter(0..items).map(Ok))
                .await?;
            stream.close().await?;
            assert_eq!(cx.result().await?, items);
            to_callee.push(Rate::new(items, items * 8, start.elapsed()));
        }
        portal.cancel_actor().await?;
        Ok((to_caller, to_callee))
    })
    .await
}

/// Round trips of one item through a context's echo, next to round trips
/// of a call to the same actor, interleaved: (echoes, calls).
pub async fn context_echo(rounds: usize) -> tractor::Result<(Vec<Duration>, Vec<Duration>)> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "echo").await?;
        let (cx, ()) = portal.open_context(echo::call()).await?;
        let mut stream = cx.open_stream().await?;
        for i in 0..1000 {
            portal.run(noop::call()).await?;
            stream.send(i).await?;
            stream.next().await.transpose()?;
        }
        let mut echoes = Vec::with_capacity(rounds);
        let mut calls = Vec::with_capacity(rounds);
        for i in 0..rounds as u64 {
            let start = Instant::now();
            stream.send(i).await?;
            let back = stream.next().await.transpose()?;
            echoes.push(start.elapsed());
            assert_eq!(back, Some(i));
            let start = Instant::now();
            portal.run(noop::call()).await?;
            calls.push(start.elapsed());
        }
        drop(stream);
        cx.result().await?;
        portal.cancel_actor().await?;
        Ok((echoes, calls))
    })
    .await
}

/// A nursery of `daemons` idle daemons and one child that fails: the time
/// from the root learning of the failure to every process reaped.
pub async fn teardown(daemons: usize, runs: usize) -> tractor::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut failed_at = None;
        let outcome = tractor::open_nursery(async |n: &ActorNursery| {
            for i in 0..daemons {
                daemon(n, &format!("idle_{i}")).await?;
            }
            let failer = n.run_in_actor("failer", fail::call()).await?;
            let failure = failer.result().await;
            failed_at = Some(Instant::now());
            failure
        })
        .await;
        let failed_at = failed_at.expect("the failure reached the body");
        assert!(outcome.is_err());
        samples.push(failed_at.elapsed());
    }
    Ok(samples)
}

/// Resident set size of idle daemons, in bytes.
pub async fn idle_rss(actors: usize, method: StartMethod) -> tractor::Result<Vec<u64>> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let mut sizes = Vec::with_capacity(actors);
        for i in 0..actors {
            let portal = n
                .start_actor(format!("idle_{i}"))
                .enable_modules([module_path!()])
                .start_method(method)
                .await?;
            let pid = portal.run(pid::call()).await?;
            sizes.push(rss_of(pid)?);
        }
        n.cancel().await?;
        Ok(sizes)
    })
    .await
}

fn rss_of(pid: u32) -> tractor::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| Error::other("no VmRSS"))
}
