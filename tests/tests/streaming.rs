//! Streams between actors: both forms, completeness and order, errors
//! after items, cancellation both ways, concurrency on one channel, and
//! flow control.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tractor::{ActorNursery, Error, Portal, RemoteStream, StreamContext};

#[tractor::stream]
fn count_to(n: u64) -> impl Stream<Item = u64> {
    futures::stream::iter(0..n)
}

#[tractor::stream]
async fn count_async(n: u64) -> impl Stream<Item = u64> {
    async_stream::stream! {
        for i in 0..n {
            tokio::task::yield_now().await;
            yield i;
        }
    }
}

/// Context form: `tasks` tasks push `per_task` items each, concurrently.
#[tractor::stream]
async fn from_tasks(
    ctx: StreamContext<(u32, u32)>,
    tasks: u32,
    per_task: u32,
) -> tractor::Result<()> {
    let pushers = (0..tasks).map(|task| {
        let ctx = ctx.clone();
        async move {
            for i in 0..per_task {
                ctx.send_yield((task, i)).await?;
            }
            Ok::<(), Error>(())
        }
    });
    futures::future::try_join_all(pushers).await?;
    Ok(())
}

#[tractor::stream]
fn panics_after(items: u64) -> impl Stream<Item = u64> {
    async_stream::stream! {
        for i in 0..items {
            yield i;
        }
        panic!("no more after {items}");
    }
}

#[derive(Debug)]
struct SensorFault(String);

impl std::fmt::Display for SensorFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sensor fault: {}", self.0)
    }
}

#[tractor::stream]
async fn fails_after(ctx: StreamContext<u64>, items: u64) -> Result<(), SensorFault> {
    for i in 0..items {
        ctx.send_yield(i)
            .await
            .map_err(|e| SensorFault(e.to_string()))?;
    }
    Err(SensorFault("overheated".into()))
}

/// Producers alive in this actor (a live producer holds a guard).
static LIVE: std::sync::LazyLock<watch::Sender<u64>> =
    std::sync::LazyLock::new(|| watch::Sender::new(0));
/// Items produced so far by `counted_forever` in this actor.
static PRODUCED: AtomicU64 = AtomicU64::new(0);

struct Alive;

impl Alive {
    fn new() -> Self {
        LIVE.send_modify(|live| *live += 1);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        LIVE.send_modify(|live| *live -= 1);
    }
}

/// Yields as fast as it is allowed to, forever, counting what it made.
#[tractor::stream]
fn counted_forever() -> impl Stream<Item = u64> {
    async_stream::stream! {
        let _alive = Alive::new();
        loop {
            let n = PRODUCED.fetch_add(1, Ordering::SeqCst);
            yield n;
        }
    }
}

#[tractor::rpc]
async fn produced() -> u64 {
    PRODUCED.load(Ordering::SeqCst)
}

/// Chunks made so far by `counted_chunks_forever` in this actor.
static PRODUCED_CHUNKS: AtomicU64 = AtomicU64::new(0);

/// Yields `size`-byte chunks as fast as it is allowed to, forever,
/// counting what it made.
#[tractor::stream]
fn counted_chunks_forever(size: usize) -> impl Stream<Item = bytes::Bytes> {
    let chunk = bytes::Bytes::from(vec![7u8; size]);
    async_stream::stream! {
        loop {
            PRODUCED_CHUNKS.fetch_add(1, Ordering::SeqCst);
            yield chunk.clone();
        }
    }
}

#[tractor::rpc]
async fn produced_chunks() -> u64 {
    PRODUCED_CHUNKS.load(Ordering::SeqCst)
}

/// Returns once no `counted_forever` producer is alive in this actor.
#[tractor::rpc]
async fn no_live_producers() {
    let mut live = LIVE.subscribe();
    let _ = live.wait_for(|live| *live == 0).await;
}

#[tractor::rpc]
async fn ping() -> String {
    "pong".into()
}

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name).enable_modules([module_path!()]).await
}

async fn collect<T: serde::de::DeserializeOwned>(
    stream: RemoteStream<T>,
) -> tractor::Result<Vec<T>> {
    stream.collect::<Vec<_>>().await.into_iter().collect()
}

#[tractor::test]
async fn generator_streams_arrive_complete_and_in_order() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let streamer = daemon(n, "streamer").await?;
        let small = collect(streamer.open_stream(count_to::call(10)).await?).await?;
        assert_eq!(small, (0..10).collect::<Vec<_>>());
        let large = collect(streamer.open_stream(count_to::call(100_000)).await?).await?;
        assert_eq!(large.len(), 100_000);
        assert!(large.iter().copied().eq(0..100_000), "every item, in order");
        let awaited = collect(streamer.open_stream(count_async::call(1000)).await?).await?;
        assert_eq!(awaited, (0..1000).collect::<Vec<_>>());
        let empty = collect(streamer.open_stream(count_to::call(0)).await?).await?;
        assert!(empty.is_empty());
        streamer.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn context_streams_take_items_from_many_tasks() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let streamer = daemon(n, "pusher").await?;
        let call = from_tasks::call(4, 500).window(8);
        let items = collect(streamer.open_stream(call).await?).await?;
        assert_eq!(items.len(), 2000);
        for task in 0..4 {
            let mine: Vec<_> = items
                .iter()
                .filter(|(t, _)| *t == task)
                .map(|(_, i)| *i)
                .collect();
            assert_eq!(
                mine,
                (0..500).collect::<Vec<_>>(),
                "task {task}'s items, in its order"
            );
        }
        streamer.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn a_panic_after_three_items_is_three_oks_then_an_err() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let streamer = daemon(n, "fragile").await?;
        let items: Vec<_> = streamer
            .open_stream(panics_after::call(3))
            .await?
            .collect()
            .await;
        assert_eq!(items.len(), 4, "{items:?}");
        for (i, item) in items[..3].iter().enumerate() {
            assert_eq!(item.as_ref().unwrap(), &(i as u64));
        }
        let err = items[3].as_ref().unwrap_err();
        let remote = &err.remote_errors()[0];
        assert_eq!(remote.type_name(), "panic");
        assert_eq!(remote.message(), "no more after 3");
        assert_eq!(remote.actor().name(), "fragile");

        let items: Vec<_> = streamer
            .open_stream(fails_after::call(2))
            .await?
            .collect()
            .await;
        assert_eq!(items.len(), 3, "{items:?}");
        let remote = &items[2].as_ref().unwrap_err().remote_errors()[0];
        assert!(
            remote.type_name().ends_with("SensorFault"),
            "{}",
            remote.type_name()
        );
        assert_eq!(remote.message(), "sensor fault: overheated");

        // The actor outlives its functions' failures.
        assert_eq!(streamer.run(ping::call()).await?, "pong");
        streamer.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn dropping_a_stream_cancels_the_producer_and_the_actor_keeps_serving() -> tractor::Result<()>
{
    tractor::open_nursery(async |n: &ActorNursery| {
        let streamer = daemon(n, "endless").await?;
        let mut stream = streamer.open_stream(counted_forever::call()).await?;
        for expected in 0..100 {
            assert_eq!(stream.next().await.unwrap()?, expected);
        }
        drop(stream);
        tokio::time::timeout(
            Duration::from_secs(1),
            streamer.run(no_live_producers::call()),
        )
        .await
        .expect("the producer was not cancelled within 1 s")?;
        assert_eq!(streamer.run(ping::call()).await?, "pong");
        streamer.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn cancelling_the_producing_actor_ends_the_stream_with_an_error() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let streamer = daemon(n, "doomed").await?;
        let mut stream = streamer
            .open_stream(counted_forever::call().window(4))
            .await?;
        assert_eq!(stream.next().await.unwrap()?, 0);
        assert!(streamer.cancel_actor().await?);
        let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(2), stream.collect::<Vec<_>>())
            .await
            .expect("the stream ended instead of hanging");
        let last = rest.last().expect("an error ends the stream");
        assert!(
            matches!(last, Err(Error::Cancelled | Error::Disconnected { .. })),
            "{last:?}"
        );
        assert!(
            rest.len() <= 5,
            "at most the window, then the error: {rest:?}"
        );
        Ok(())
    })
    .await
}

#[tractor::test]
async fn four_concurrent_streams_share_one_portal() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let streamer = daemon(n, "multiplexer").await?;
        let lengths = [10_000u64, 1, 5_000, 20_000];
        let mut streams = Vec::new();
        for len in lengths {
            streams.push(collect(
                streamer.open_stream(count_to::call(len).window(16)).await?,
            ));
        }
        // A call goes through while four streams are in flight.
        let (items, pong) = tokio::join!(
            futures::future::try_join_all(streams),
            streamer.run(ping::call())
        );
        assert_eq!(pong?, "pong");
        for (items, len) in items?.iter().zip(lengths) {
            assert!(items.iter().copied().eq(0..len), "stream of {len}");
        }
        streamer.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn run_in_actor_with_a_stream() -> tractor::Result<()> {
    let items = tractor::open_nursery(async |n: &ActorNursery| {
        let counter = n.run_in_actor("counter", count_to::call(25)).await?;
        let stream = counter.result().await?;
        assert!(matches!(
            counter.result().await,
            Err(Error::ResultTaken { .. })
        ));
        collect(stream).await
    })
    .await?;
    assert_eq!(items, (0..25).collect::<Vec<_>>());

    // A stream the body never takes is drained so the child can finish.
    tractor::open_nursery(async |n: &ActorNursery| {
        n.run_in_actor("ignored", count_to::call(10_000)).await?;
        Ok(())
    })
    .await?;

    // A failing stream fails the nursery.
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let fragile = n.run_in_actor("fragile", panics_after::call(2)).await?;
        let _ = fragile.result().await?.collect::<Vec<_>>().await;
        Ok(())
    })
    .await
    .unwrap_err();
    assert_eq!(err.remote_errors()[0].message(), "no more after 2");
    Ok(())
}

#[tractor::test]
async fn a_slow_consumer_bounds_what_a_fast_producer_buffers() -> tractor::Result<()> {
    const WINDOW: u32 = 16;
    tractor::open_nursery(async |n: &ActorNursery| {
        let producer = daemon(n, "firehose").await?;
        let mut stream = producer
            .open_stream(counted_forever::call().window(WINDOW))
            .await?;
        let mut taken = 0u64;
        for _ in 0..40 {
            stream.next().await.unwrap()?;
            taken += 1;
            // The consumer's own pace: one item per 10 ms.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let produced = producer.run(produced::call()).await?;
            assert!(
                produced <= taken + u64::from(WINDOW),
                "produced {produced} while the consumer took {taken} (window {WINDOW})"
            );
        }
        // And the producer was not starved either: credit came back every
        // half window, so it stayed at least half a window ahead.
        let produced = producer.run(produced::call()).await?;
        assert!(
            produced >= taken + u64::from(WINDOW / 2),
            "produced {produced} for {taken} taken (window {WINDOW})"
        );
        drop(stream);
        producer.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Large items are bounded by the byte window, not the item window: a
/// producer of 16 KiB chunks with room for 1000 items but 64 KiB is at
/// most 64 KiB (plus the one item a batch may overshoot by) ahead.
#[tractor::test]
async fn the_byte_window_bounds_what_large_items_buffer() -> tractor::Result<()> {
    const CHUNK: usize = 16 * 1024;
    const BYTES: u32 = 64 * 1024;
    let ahead = u64::from(BYTES) / CHUNK as u64 + 1;
    tractor::open_nursery(async |n: &ActorNursery| {
        let producer = daemon(n, "chunker").await?;
        let call = counted_chunks_forever::call(CHUNK)
            .window(1000)
            .window_bytes(BYTES);
        let mut stream = producer.open_stream(call).await?;
        let mut taken = 0u64;
        for _ in 0..30 {
            assert_eq!(stream.next().await.unwrap()?.len(), CHUNK);
            taken += 1;
            // The consumer's own pace: one item per 10 ms.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let produced = producer.run(produced_chunks::call()).await?;
            assert!(
                produced <= taken + ahead,
                "produced {produced} while the consumer took {taken} ({BYTES} bytes of room)"
            );
        }
        let produced = producer.run(produced_chunks::call()).await?;
        assert!(
            produced > taken,
            "the producer kept ahead: produced {produced} for {taken} taken"
        );
        drop(stream);
        producer.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn opening_a_plain_function_as_a_stream_is_an_error() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let worker = daemon(n, "mixed").await?;
        let wrong: tractor::StreamCall<String> = tractor::StreamCall::by_name(ping::NAME, &());
        let items: Vec<_> = worker.open_stream(wrong).await?.collect().await;
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].as_ref().unwrap_err().remote_errors()[0].type_name(),
            "WrongCallKind"
        );
        let wrong: tractor::Call<Vec<u64>> = tractor::Call::by_name(count_to::NAME, &(3u64,));
        let err = worker.run(wrong).await.unwrap_err();
        assert_eq!(err.remote_errors()[0].type_name(), "WrongCallKind");
        worker.cancel_actor().await?;
        Ok(())
    })
    .await
}
