//! Contexts: a typed two-way dialog between a caller and a task in another
//! actor (`#[tractor::context]`, `Portal::open_context`). The started value
//! and the result, two-way streams and how each side ends them, errors
//! before and after `started`, cancellation from the caller (asked for, or
//! by dropping), credit flow control both ways, many contexts on one
//! portal, a split stream, a callee killed mid-dialog, and a context that
//! holds a service nursery open.
//!
//! Ported from Python tractor's `tests/test_2way.py`,
//! `tests/test_context_stream_semantics.py` and
//! `tests/test_child_manages_service_nursery.py` onto this crate's
//! contract; each test names the Python test it ports. Every callee
//! holds a [`Guard`] (see `tractor_tests::tally`), so a test learns how a
//! task ended by asking its actor through another rpc, which waits for the
//! event rather than sleeping.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{oneshot, watch};
use tractor::{ActorNursery, Context, Error, Portal};
use tractor_tests::tally::{
    self, Guard, Tally, pid, ping, tally_now, wait_cancelled, wait_finished,
};
use tractor_tests::within;
use tractor_tests::{exits_within, kill};

// --- plain rpcs every daemon serves -----------------------------------------

// --- errors ---------------------------------------------------------------

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl From<Error> for Refused {
    fn from(err: Error) -> Self {
        Refused(err.to_string())
    }
}

#[derive(Debug)]
struct SensorFault(String);

impl std::fmt::Display for SensorFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sensor fault: {}", self.0)
    }
}

impl From<Error> for SensorFault {
    fn from(err: Error) -> Self {
        SensorFault(err.to_string())
    }
}

// --- callees --------------------------------------------------------------

/// `simple_setup_teardown`: hands `data + 1` to the caller, then returns
/// "yo" or, with `block`, waits until cancelled.
#[tractor::context]
async fn setup_teardown(
    ctx: Context<u64, (), ()>,
    data: u64,
    block: bool,
) -> tractor::Result<String> {
    let guard = Guard::new();
    ctx.started(data + 1).await?;
    if block {
        std::future::pending::<()>().await;
    }
    guard.finish();
    Ok("yo".into())
}

/// An echo server: greets, then sends back every item until the caller's
/// side of the stream ends; returns how many it echoed.
#[tractor::context]
async fn echo(ctx: Context<String, String, String>, greeting: String) -> tractor::Result<u64> {
    let guard = Guard::new();
    ctx.started(greeting).await?;
    let mut stream = ctx.open_stream().await?;
    let mut echoed = 0;
    while let Some(item) = stream.next().await {
        stream.send(item?).await?;
        echoed += 1;
    }
    guard.finish();
    Ok(echoed)
}

/// Streams `0..n` to the caller, then returns (which ends its stream).
#[tractor::context]
async fn count_up(ctx: Context<u64, (), u64>, n: u64) -> tractor::Result<String> {
    let guard = Guard::new();
    ctx.started(n).await?;
    let mut stream = ctx.open_stream().await?;
    for i in 0..n {
        stream.send(i).await?;
    }
    guard.finish();
    Ok(format!("sent {n}"))
}

#[tractor::context]
async fn refuses_before_started(_ctx: Context<u64, (), ()>, why: String) -> Result<(), Refused> {
    Err(Refused(why))
}

#[tractor::context]
async fn panics_before_started(_ctx: Context<u64, (), ()>) -> u64 {
    panic!("no start for you");
}

/// Returns without ever calling `started`.
#[tractor::context]
async fn returns_before_started(_ctx: Context<u64, (), ()>) -> u64 {
    7
}

/// Waits for the caller's go, sends `items` items, then fails.
#[tractor::context]
async fn fails_after_started(ctx: Context<(), (), u64>, items: u64) -> Result<(), SensorFault> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    // The caller's side is open (it sent this) before anything can fail.
    match stream.next().await {
        Some(Ok(())) => {}
        other => return Err(SensorFault(format!("expected the go, got {other:?}"))),
    }
    for i in 0..items {
        stream.send(i).await?;
    }
    Err(SensorFault("overheated".into()))
}

/// Misuses its context: opens the stream before `started`, calls `started`
/// twice. Hands the caller whether the early open failed, returns whether
/// the second `started` did.
#[tractor::context]
async fn misuses_started(ctx: Context<bool, (), ()>) -> tractor::Result<bool> {
    let early_open_failed = ctx.open_stream().await.is_err();
    ctx.started(early_open_failed).await?;
    Ok(ctx.started(false).await.is_err())
}

/// Opens its stream twice: returns whether the second open failed, once
/// the caller's side of the first has ended.
#[tractor::context]
async fn opens_twice(ctx: Context<(), (), ()>) -> tractor::Result<bool> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    let second_failed = ctx.open_stream().await.is_err();
    while stream.next().await.transpose()?.is_some() {}
    Ok(second_failed)
}

/// Started, then waits until cancelled, with or without a stream open.
#[tractor::context]
async fn sleeper(ctx: Context<(), (), ()>, open_stream: bool) -> tractor::Result<()> {
    let guard = Guard::new();
    ctx.started(()).await?;
    let _stream = if open_stream {
        Some(ctx.open_stream().await?)
    } else {
        None
    };
    std::future::pending::<()>().await;
    guard.finish();
    Ok(())
}

/// Runs in a middle actor: holds a `sleeper` context open in actor
/// "server" for as long as it lives.
#[tractor::context]
async fn holds_sleeper(ctx: Context<(), (), ()>) -> tractor::Result<()> {
    let server = tractor::wait_for_actor("server").await?;
    let (_held, ()) = server.open_context(sleeper::call(true)).await?;
    ctx.started(()).await?;
    std::future::pending::<()>().await;
    Ok(())
}

/// How many items `firehose` has finished sending in this actor.
static SENT: AtomicU64 = AtomicU64::new(0);

/// Sends `0..total` as fast as credit allows, counting every send that
/// completed.
#[tractor::context]
async fn firehose(ctx: Context<(), (), u64>, total: u64) -> tractor::Result<u64> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    for i in 0..total {
        stream.send(i).await?;
        SENT.store(i + 1, Ordering::SeqCst);
    }
    Ok(total)
}

#[tractor::rpc]
async fn sent_so_far() -> u64 {
    SENT.load(Ordering::SeqCst)
}

/// Set by `release`: `lazy_sink` may start reading.
static RELEASED: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::Sender::new(false));

#[tractor::rpc]
async fn release() {
    RELEASED.send_replace(true);
}

/// Reads nothing until released, then everything: returns what it read.
#[tractor::context]
async fn lazy_sink(ctx: Context<(), u64, ()>) -> tractor::Result<Vec<u64>> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    let mut released = RELEASED.subscribe();
    released
        .wait_for(|released| *released)
        .await
        .map_err(Error::other)?;
    let mut read = Vec::new();
    while let Some(item) = stream.next().await {
        read.push(item?);
    }
    Ok(read)
}

/// Takes every line until the caller closes its sending, then sends them
/// back uppercased (the caller still receives) and returns how many.
#[tractor::context]
async fn shout_back_after_close(ctx: Context<(), String, String>) -> tractor::Result<usize> {
    ctx.started(()).await?;
    let mut stream = ctx.open_stream().await?;
    let mut lines = Vec::new();
    while let Some(line) = stream.next().await {
        lines.push(line?);
    }
    for line in &lines {
        stream.send(line.to_uppercase()).await?;
    }
    Ok(lines.len())
}

/// Opens its stream and drops it at once, then stays (so that only the
/// stream is gone, not the context) until cancelled.
#[tractor::context]
async fn drops_its_stream(ctx: Context<(), u64, ()>) -> tractor::Result<()> {
    let guard = Guard::new();
    ctx.started(()).await?;
    drop(ctx.open_stream().await?);
    std::future::pending::<()>().await;
    guard.finish();
    Ok(())
}

/// `error_before_started`: holds a context open on actor `sleeper_name`,
/// then fails before `started`; the failure must not be hidden by the
/// cancellation of the context it held.
#[tractor::context]
async fn fails_holding_a_context(
    _ctx: Context<(), (), ()>,
    sleeper_name: String,
) -> Result<(), Refused> {
    let peer = tractor::wait_for_actor(&sleeper_name).await?;
    let (held, ()) = peer.open_context(sleeper::call(true)).await?;
    let _stream = held.open_stream().await?;
    Err(Refused("while holding a context".into()))
}

// --- a service nursery held open by a context ------------------------------

/// The service actor's portal, published by `service_manager`.
static SERVICE: LazyLock<watch::Sender<Option<Portal>>> =
    LazyLock::new(|| watch::Sender::new(None));

#[tractor::rpc]
async fn service_fault() -> Result<u64, SensorFault> {
    Err(SensorFault("the service broke".into()))
}

/// `open_actor_local_nursery`: opens a nursery in this actor with a
/// `service` daemon, publishes its portal, hands the caller the service's
/// pid and keeps the nursery open until cancelled.
#[tractor::context]
async fn service_manager(ctx: Context<u32, (), ()>) -> tractor::Result<()> {
    let guard = Guard::new();
    tractor::open_nursery(async |n: &ActorNursery| {
        let service = n
            .start_actor("service")
            .enable_modules([module_path!(), tally::MODULE])
            .await?;
        let service_pid = service.run(pid::call()).await?;
        SERVICE.send_replace(Some(service));
        ctx.started(service_pid).await?;
        std::future::pending::<()>().await;
        Ok(())
    })
    .await?;
    guard.finish();
    Ok(())
}

/// `trio_main`: uses the service another context published; its error
/// travels to this context's caller.
#[tractor::context]
async fn use_service(ctx: Context<(), (), ()>) -> tractor::Result<u64> {
    let service = SERVICE
        .subscribe()
        .wait_for(Option::is_some)
        .await
        .map_err(Error::other)?
        .clone()
        .expect("published");
    ctx.started(()).await?;
    service.run(service_fault::call()).await
}

// --- helpers --------------------------------------------------------------

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name)
        .enable_modules([module_path!(), tally::MODULE])
        .await
}

/// Asserts that the daemon still serves calls.
async fn still_serves(portal: &Portal) -> tractor::Result<()> {
    assert_eq!(portal.run(ping::call()).await?, "pong");
    Ok(())
}

// --- tests ----------------------------------------------------------------

/// Ports test_2way.py::test_simple_context and
/// test_context_stream_semantics.py::test_simple_context (no stream): the
/// started value arrives with the handle, the return value from result(),
/// once.
#[tractor::test]
async fn started_value_and_result_without_a_stream() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "simple_context").await?;
        let (cx, sent) = portal.open_context(setup_teardown::call(10, false)).await?;
        assert_eq!(sent, 11);
        assert_eq!(cx.result().await?, "yo");
        let again = cx.result().await;
        assert!(
            matches!(again, Err(Error::ResultTaken { .. })),
            "the first result() took it: {again:?}"
        );
        drop(cx);
        let tally = portal.run(tally_now::call()).await?;
        assert_eq!(
            tally,
            Tally {
                live: 0,
                finished: 1,
                cancelled: 0
            }
        );
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_2way.py::test_simple_rpc: a ping-pong server over a two-way
/// stream, which ends when the caller drops its stream.
#[tractor::test]
async fn an_echo_server_ends_when_the_caller_drops_its_stream() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "rpc_server").await?;
        let (cx, greeting) = portal.open_context(echo::call("hi".into())).await?;
        assert_eq!(greeting, "hi");
        let mut stream = cx.open_stream().await?;
        for i in 0..10 {
            stream.send(format!("ping {i}")).await?;
            let pong = stream.next().await.transpose()?;
            assert_eq!(pong, Some(format!("ping {i}")));
        }
        drop(stream);
        // The callee saw its stream end, returned, and said how many.
        assert_eq!(within("the echo's result", cx.result()).await?, 10);
        let tally = portal.run(wait_finished::call(1)).await?;
        assert_eq!(tally.cancelled, 0, "{tally:?}");
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::
/// test_callee_closes_ctx_after_stream_open and keep_sending_from_callee:
/// only the callee sends; its return ends the caller's stream after every
/// item, and result() is its return value.
#[tractor::test]
async fn callee_only_streaming_then_a_result() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "counter").await?;
        for total in [0, 1, 300] {
            let (cx, announced) = portal.open_context(count_up::call(total).window(8)).await?;
            assert_eq!(announced, total);
            let stream = cx.open_stream().await?;
            let items: Vec<u64> = within("the end of the stream", stream.collect::<Vec<_>>())
                .await
                .into_iter()
                .collect::<tractor::Result<_>>()?;
            assert!(items.iter().copied().eq(0..total), "{items:?}");
            assert_eq!(cx.result().await?, format!("sent {total}"));
        }
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::test_started_misuse (an error
/// raised before started reaches open_context, with its type and actor).
#[tractor::test]
async fn an_error_before_started_is_the_open_contexts_err() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "refuser").await?;
        let err = portal
            .open_context(refuses_before_started::call("not today".into()))
            .await
            .map(|_| ())
            .unwrap_err();
        let Error::Remote(remote) = &err else {
            panic!("expected a remote error, got {err:?}");
        };
        assert!(
            remote.type_name().ends_with("context::Refused"),
            "{}",
            remote.type_name()
        );
        assert_eq!(remote.message(), "refused: not today");
        assert_eq!(remote.actor().name(), "refuser");
        assert_eq!(remote.actor(), portal.uid());

        let err = portal
            .open_context(panics_before_started::call())
            .await
            .map(|_| ())
            .unwrap_err();
        let remote = &err.remote_errors()[0];
        assert_eq!(remote.type_name(), "panic", "{err:?}");
        assert_eq!(remote.message(), "no start for you");
        assert_eq!(remote.actor().name(), "refuser");

        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// A callee that returns without calling started fails open_context (the
/// caller never gets a started value).
#[tractor::test]
async fn a_return_before_started_is_the_open_contexts_err() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "quitter").await?;
        let opened = portal.open_context(returns_before_started::call()).await;
        let err = opened.map(|_| ()).unwrap_err();
        let remote = err.remote_errors();
        assert_eq!(remote.len(), 1, "one error, from the callee: {err:?}");
        assert_eq!(remote[0].actor().name(), "quitter", "{err:?}");
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::test_started_misuse (the
/// misuses themselves): opening the stream before started, and started
/// twice, are errors the callee sees.
#[tractor::test]
async fn misusing_started_is_an_error_in_the_callee() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "misuser").await?;
        let (cx, early_open_failed) = portal.open_context(misuses_started::call()).await?;
        assert!(early_open_failed, "open_stream before started must fail");
        assert!(cx.result().await?, "a second started must fail");
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// An error raised after started arrives as an Err item on the caller's
/// stream, after the items sent, and again as result()'s Err.
#[tractor::test]
async fn an_error_after_started_is_an_err_item_and_the_results_err() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "fragile").await?;
        let (cx, ()) = portal.open_context(fails_after_started::call(3)).await?;
        let mut stream = cx.open_stream().await?;
        stream.send(()).await?;
        let items: Vec<_> = within("the end of the stream", stream.collect::<Vec<_>>()).await;
        assert_eq!(items.len(), 4, "three items, then the error: {items:?}");
        for (i, item) in items[..3].iter().enumerate() {
            assert_eq!(item.as_ref().ok(), Some(&(i as u64)), "{items:?}");
        }
        let assert_the_fault = |err: &Error| {
            let Error::Remote(remote) = err else {
                panic!("expected a remote error, got {err:?}");
            };
            assert!(
                remote.type_name().ends_with("context::SensorFault"),
                "{}",
                remote.type_name()
            );
            assert_eq!(remote.message(), "sensor fault: overheated");
            assert_eq!(remote.actor().name(), "fragile");
        };
        assert_the_fault(items[3].as_ref().unwrap_err());
        assert_the_fault(&cx.result().await.unwrap_err());
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::
/// test_do_not_swallow_error_before_started_by_remote_contextcancelled: a
/// callee that fails before started while holding a context of its own
/// reports its own error, not the cancellation of the one it held.
#[tractor::test]
async fn an_error_before_started_is_not_swallowed_by_a_held_contexts_cancel() -> tractor::Result<()>
{
    tractor::open_nursery(async |n: &ActorNursery| {
        let errorer = daemon(n, "errorer").await?;
        let sleeper_portal = daemon(n, "sleeper").await?;
        let err = errorer
            .open_context(fails_holding_a_context::call("sleeper".into()))
            .await
            .map(|_| ())
            .unwrap_err();
        let Error::Remote(remote) = &err else {
            panic!("expected the errorer's own error, got {err:?}");
        };
        assert!(remote.type_name().ends_with("context::Refused"), "{err:?}");
        assert_eq!(remote.message(), "refused: while holding a context");
        assert_eq!(remote.actor().name(), "errorer");
        // The context it held was cancelled with it.
        let tally = within(
            "the held context's cancellation",
            sleeper_portal.run(wait_cancelled::call(1)),
        )
        .await?;
        assert_eq!(tally.finished, 0, "{tally:?}");
        still_serves(&errorer).await?;
        still_serves(&sleeper_portal).await?;
        errorer.cancel_actor().await?;
        sleeper_portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::test_caller_cancels (cancel
/// method 'ctx') and test_multitask_caller_cancels_from_nonroot_task:
/// cx.cancel() from one task while another waits on the stream; the callee
/// is cancelled (its guard dropped), result() is cancelled.
#[tractor::test]
async fn cancel_from_the_caller() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "ctx_cancelled").await?;

        // No stream: a callee blocked after started.
        let (cx, sent) = portal.open_context(setup_teardown::call(1, true)).await?;
        assert_eq!(sent, 2);
        assert_eq!(portal.run(tally_now::call()).await?.live, 1);
        within("the cancel's acknowledgement", cx.cancel()).await?;
        let result = cx.result().await;
        assert!(
            result.as_ref().is_err_and(Error::is_cancelled),
            "{result:?}"
        );
        let tally = within("the callee's end", portal.run(wait_cancelled::call(1))).await?;
        assert_eq!(tally.finished, 0, "{tally:?}");

        // An echo in the middle of a dialog, cancelled from a second task
        // while the first waits for the next item.
        let (cx, _) = portal.open_context(echo::call("yo".into())).await?;
        let mut stream = cx.open_stream().await?;
        stream.send("yo".into()).await?;
        assert_eq!(stream.next().await.transpose()?.as_deref(), Some("yo"));
        let (rest, cancelled) = within("the cancel", async {
            tokio::join!(stream.next(), async {
                // The echo is live before it is cancelled.
                assert_eq!(portal.run(tally_now::call()).await?.live, 1);
                cx.cancel().await
            })
        })
        .await;
        cancelled?;
        match rest {
            None => {}
            Some(Err(err)) if err.is_cancelled() => {}
            other => panic!("the stream ends (or fails cancelled) after a cancel: {other:?}"),
        }
        let result = cx.result().await;
        assert!(
            result.as_ref().is_err_and(Error::is_cancelled),
            "{result:?}"
        );
        let tally = within("the echo's end", portal.run(wait_cancelled::call(2))).await?;
        assert_eq!(tally.finished, 0, "{tally:?}");

        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::test_simple_context with
/// error_parent (the caller leaves the context early): dropping the handle
/// (and its stream) cancels the callee.
#[tractor::test]
async fn dropping_the_handle_cancels_the_callee() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "abandoned").await?;

        let (cx, ()) = portal.open_context(sleeper::call(false)).await?;
        assert_eq!(portal.run(tally_now::call()).await?.live, 1);
        drop(cx);
        let tally = within("the callee's end", portal.run(wait_cancelled::call(1))).await?;
        assert_eq!(tally.finished, 0, "{tally:?}");

        // With a stream open on both sides (so that the callee is not
        // ended by its stream, which it never reads).
        let (cx, ()) = portal.open_context(sleeper::call(true)).await?;
        let stream = cx.open_stream().await?;
        assert_eq!(portal.run(tally_now::call()).await?.live, 1);
        drop(stream);
        drop(cx);
        let tally = within("the callee's end", portal.run(wait_cancelled::call(2))).await?;
        assert_eq!(tally.finished, 0, "{tally:?}");

        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::test_one_end_stream_not_opened
/// and test_allow_overruns_stream onto credit flow control: a slow
/// consumer is never overrun; the producer is held back to the window.
#[tractor::test]
async fn a_slow_consumer_holds_the_producer_to_the_window() -> tractor::Result<()> {
    const WINDOW: u64 = 4;
    const TOTAL: u64 = 200;
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "firehose").await?;
        let (cx, ()) = portal
            .open_context(firehose::call(TOTAL).window(WINDOW as u32))
            .await?;
        let mut stream = cx.open_stream().await?;
        let mut taken = 0u64;
        for checkpoint in [0, 1, 5, 12, 30, 57] {
            while taken < checkpoint {
                assert_eq!(stream.next().await.transpose()?, Some(taken));
                taken += 1;
            }
            // The consumer's own (slow) pace: the producer has time to run
            // as far ahead as it is let.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let sent = portal.run(sent_so_far::call()).await?;
            assert!(
                sent <= taken + WINDOW,
                "sent {sent} while the consumer took {taken} (window {WINDOW})"
            );
        }
        // Every item, in order, once the consumer keeps up.
        let rest: Vec<u64> = within("the rest of the stream", stream.collect::<Vec<_>>())
            .await
            .into_iter()
            .collect::<tractor::Result<_>>()?;
        assert!(rest.iter().copied().eq(taken..TOTAL), "{rest:?}");
        assert_eq!(cx.result().await?, TOTAL);
        assert_eq!(portal.run(sent_so_far::call()).await?, TOTAL);
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Credit the other way: the caller may send a window ahead of a callee
/// that does not read, and then waits; nothing is lost.
#[tractor::test]
async fn a_caller_sending_to_a_callee_that_does_not_read_waits_for_credit() -> tractor::Result<()> {
    const WINDOW: u64 = 4;
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "lazy").await?;
        let (cx, ()) = portal
            .open_context(lazy_sink::call().window(WINDOW as u32))
            .await?;
        let mut stream = cx.open_stream().await?;
        for i in 0..WINDOW {
            within("a send within the window", stream.send(i)).await?;
        }
        {
            let beyond = stream.send(WINDOW);
            tokio::pin!(beyond);
            // A whole round trip to the callee goes by while the send past
            // the window waits.
            tokio::select! {
                biased;
                sent = &mut beyond => panic!("a send past the window went through: {sent:?}"),
                pong = portal.run(ping::call()) => assert_eq!(pong?, "pong"),
            }
            portal.run(release::call()).await?;
            within("the send once the callee reads", beyond).await?;
        }
        for i in WINDOW + 1..50 {
            stream.send(i).await?;
        }
        stream.close().await?;
        let read = within("the callee's result", cx.result()).await?;
        assert_eq!(read, (0..50).collect::<Vec<_>>());
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Sink::close ends the caller's sending only: the callee sees None after
/// the items sent, and its replies still reach the caller.
#[tractor::test]
async fn closing_the_sink_ends_one_direction_only() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "half_closer").await?;
        let (cx, ()) = portal.open_context(shout_back_after_close::call()).await?;
        let mut stream = cx.open_stream().await?;
        let lines = ["ya", "the dude abides", "over the line"];
        for line in lines {
            stream.send(line.to_string()).await?;
        }
        stream.close().await?;
        // Only now, the caller's side closed, does the callee reply.
        for line in lines {
            let reply = within("a reply after close", stream.next())
                .await
                .transpose()?;
            assert_eq!(reply, Some(line.to_uppercase()));
        }
        assert!(
            within("the end of the stream", stream.next())
                .await
                .is_none(),
            "the callee's return ends its side"
        );
        assert_eq!(cx.result().await?, lines.len());
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// A side that drops its stream ends both directions for itself: the
/// caller's next() is None, and sending to it is an Err (soon: the attempt
/// is bounded by a count).
#[tractor::test]
async fn sending_to_a_peer_that_dropped_its_stream_is_an_err() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "dropper").await?;
        // The default window: credit in hand must not hide the hang-up.
        let (cx, ()) = portal.open_context(drops_its_stream::call()).await?;
        let mut stream = cx.open_stream().await?;
        assert!(
            within("the end of the callee's side", stream.next())
                .await
                .is_none(),
            "the callee sent nothing and dropped its stream"
        );
        // Its hang-up came before that end: the first send fails.
        let err = within("a send", stream.send(1u64)).await.unwrap_err();
        assert!(
            matches!(&err, Error::StreamClosed { actor } if actor.name() == "dropper"),
            "{err:?}"
        );
        // The context itself lives on until cancelled.
        assert_eq!(portal.run(tally_now::call()).await?.live, 1);
        cx.cancel().await?;
        assert!(cx.result().await.is_err_and(|err| err.is_cancelled()));
        within("the callee's end", portal.run(wait_cancelled::call(1))).await?;
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_context_stream_semantics.py::
/// test_callee_closes_ctx_after_stream_open (no re-open): each side may
/// open its stream once.
#[tractor::test]
async fn opening_the_stream_twice_is_an_err_on_each_side() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "twice").await?;
        let (cx, ()) = portal.open_context(opens_twice::call()).await?;
        let first = cx.open_stream().await?;
        assert!(cx.open_stream().await.is_err(), "the caller's second open");
        drop(first);
        assert!(
            within("the callee's result", cx.result()).await?,
            "the callee's second open must fail"
        );
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Eight contexts open at once on one portal, their dialogs interleaved;
/// each echo gets its own items back, in order.
#[tractor::test]
async fn eight_contexts_at_once_on_one_portal() -> tractor::Result<()> {
    const CONTEXTS: usize = 8;
    const ITEMS: u64 = 100;
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "octopus").await?;
        let mut dialogs = Vec::new();
        for c in 0..CONTEXTS {
            let (cx, greeting) = portal
                .open_context(echo::call(format!("context {c}")).window(4))
                .await?;
            assert_eq!(greeting, format!("context {c}"));
            let stream = cx.open_stream().await?;
            dialogs.push((c, cx, stream));
        }
        assert_eq!(portal.run(tally_now::call()).await?.live, CONTEXTS as u64);
        let echoed = within(
            "eight dialogs",
            futures::future::try_join_all(dialogs.into_iter().map(
                |(c, cx, mut stream)| async move {
                    for i in 0..ITEMS {
                        stream.send(format!("{c}:{i}")).await?;
                        let back = stream.next().await.transpose()?;
                        assert_eq!(back, Some(format!("{c}:{i}")));
                        // Let the other dialogs in between.
                        tokio::task::yield_now().await;
                    }
                    drop(stream);
                    cx.result().await
                },
            )),
        )
        .await?;
        assert_eq!(echoed, vec![ITEMS; CONTEXTS]);
        let tally = portal.run(wait_finished::call(CONTEXTS as u64)).await?;
        assert_eq!(tally.cancelled, 0, "{tally:?}");
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// A stream split into its halves (StreamExt::split), each used from a task
/// of its own: one sends and then closes, the other receives every echo.
#[tractor::test]
async fn a_split_stream_serves_two_tasks() -> tractor::Result<()> {
    const ITEMS: u64 = 500;
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "splitter").await?;
        let (cx, _) = portal
            .open_context(echo::call("split".into()).window(16))
            .await?;
        let (mut tx, rx) = cx.open_stream().await?.split();
        let sender = tokio::spawn(async move {
            for i in 0..ITEMS {
                tx.send(i.to_string()).await?;
            }
            tx.close().await
        });
        let receiver = tokio::spawn(rx.collect::<Vec<_>>());
        let (sent, received) =
            within("both halves", async { tokio::join!(sender, receiver) }).await;
        sent.expect("the sending task")?;
        let received: Vec<String> = received
            .expect("the receiving task")
            .into_iter()
            .collect::<tractor::Result<_>>()?;
        let expected: Vec<String> = (0..ITEMS).map(|i| i.to_string()).collect();
        assert_eq!(received, expected);
        assert_eq!(cx.result().await?, ITEMS);
        still_serves(&portal).await?;
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

fn assert_lost(err: &Error, what: &str) {
    match err {
        Error::Disconnected { actor } | Error::ActorDied { actor, .. } => {
            assert_eq!(actor.name(), "victim", "{what}: {err:?}")
        }
        other => panic!("{what}: expected Disconnected or ActorDied, got {other:?}"),
    }
}

/// The callee's actor is SIGKILLed mid-dialog: the caller's next() and
/// result() are errors naming it, not a hang and not a clean end.
#[tractor::test]
async fn a_killed_callee_fails_the_callers_stream_and_result() {
    let (observed, observation) = oneshot::channel();
    let ended = tractor::open_nursery(async |n: &ActorNursery| {
        let victim = daemon(n, "victim").await?;
        let victim_pid = victim.run(pid::call()).await?;
        let (cx, _) = victim.open_context(echo::call("hi".into())).await?;
        let mut stream = cx.open_stream().await?;
        stream.send("before".into()).await?;
        assert_eq!(stream.next().await.transpose()?.as_deref(), Some("before"));
        // The caller waits in a task of its own: the nursery ends its body
        // once it hears of the death.
        tokio::spawn(async move {
            let next = stream.next().await;
            let result = cx.result().await;
            let _ = observed.send((next, result));
        });
        kill(victim_pid);
        assert!(
            exits_within(victim_pid, Duration::from_secs(5)).await,
            "SIGKILL ends the victim"
        );
        Ok(())
    })
    .await;
    match &ended {
        Err(Error::ActorDied { actor, .. }) => assert_eq!(actor.name(), "victim"),
        other => panic!("a killed daemon fails its nursery: {other:?}"),
    }
    let (next, result) = within("the caller's errors", observation)
        .await
        .expect("the waiting task reports");
    match next {
        Some(Err(err)) => assert_lost(&err, "next()"),
        other => panic!("next() after the kill: expected an Err, got {other:?}"),
    }
    assert_lost(&result.unwrap_err(), "result()");
}

/// An actor that is cancelled ends the contexts it serves with an error
/// on the caller's side, stream and result, within the cancellation grace.
#[tractor::test]
async fn a_cancelled_callee_actor_ends_its_contexts_with_an_error() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let callee = daemon(n, "cancelled").await?;
        let (cx, ()) = callee.open_context(sleeper::call(true)).await?;
        let mut stream = cx.open_stream().await?;
        let start = std::time::Instant::now();
        assert!(callee.cancel_actor().await?, "the callee acknowledged");
        let lost = |err: &Error| err.is_cancelled() || matches!(err, Error::Disconnected { .. });
        match within("next() after the cancel", stream.next()).await {
            Some(Err(err)) => assert!(lost(&err), "{err:?}"),
            other => panic!("next() after the callee's cancel: expected an Err, got {other:?}"),
        }
        let err = within("result() after the cancel", cx.result())
            .await
            .unwrap_err();
        assert!(lost(&err), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "within the 1 s grace (and a margin): {:?}",
            start.elapsed()
        );
        Ok(())
    })
    .await
}

/// An actor that dies ends the contexts it holds: their functions, in
/// another actor, are cancelled, and that actor keeps serving.
#[tractor::test]
async fn a_dying_caller_actor_cancels_the_contexts_it_holds() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let server = daemon(n, "server").await?;
        // The holder in a nursery of its own, so that its death fails that
        // nursery only: the server lives on, to be asked.
        let inner = tractor::open_nursery(async |m: &ActorNursery| {
            let holder = daemon(m, "holder").await?;
            let holder_pid = holder.run(pid::call()).await?;
            let (_cx, ()) = holder.open_context(holds_sleeper::call()).await?;
            assert_eq!(
                server.run(tally_now::call()).await?.live,
                1,
                "the sleeper runs"
            );
            kill(holder_pid);
            assert!(exits_within(holder_pid, Duration::from_secs(5)).await);
            // The nursery ends this body once it hears of the death.
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        match &inner {
            Err(Error::ActorDied { actor, .. }) => assert_eq!(actor.name(), "holder"),
            other => panic!("a killed holder fails its nursery: {other:?}"),
        }
        let tally = within("the sleeper's end", server.run(wait_cancelled::call(1))).await?;
        assert_eq!((tally.cancelled, tally.finished), (1, 0), "{tally:?}");
        still_serves(&server).await?;
        server.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Ports test_child_manages_service_nursery.py::
/// test_actor_managed_trio_nursery_task_error_cancels_aio: a context holds
/// a nursery (with a service daemon) open in its actor; a second context
/// uses the service, and the service's error reaches that context's caller;
/// cancelling the first context tears the service down.
#[tractor::test]
async fn a_context_holds_a_service_nursery_open() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let manager = daemon(n, "nursery_mngr").await?;
        let (holder, service_pid) = manager.open_context(service_manager::call()).await?;
        assert!(tractor_tests::is_alive(service_pid));
        let (user, ()) = manager.open_context(use_service::call()).await?;
        let err = within("the service's error", user.result())
            .await
            .unwrap_err();
        let Error::Remote(remote) = &err else {
            panic!("expected the service's error, got {err:?}");
        };
        assert!(
            remote.type_name().ends_with("context::SensorFault"),
            "{err:?}"
        );
        assert_eq!(remote.message(), "sensor fault: the service broke");
        assert_eq!(remote.actor().name(), "service");
        let relays: Vec<_> = remote.relays().iter().map(|uid| uid.name()).collect();
        assert_eq!(relays, ["nursery_mngr"], "{err:?}");

        within("the holder's cancel", holder.cancel()).await?;
        assert!(holder.result().await.is_err_and(|err| err.is_cancelled()));
        assert!(
            exits_within(service_pid, Duration::from_secs(5)).await,
            "cancelling the holder ends its nursery's service"
        );
        let tally = within("the holder's end", manager.run(wait_cancelled::call(1))).await?;
        assert_eq!(tally.finished, 0, "{tally:?}");
        still_serves(&manager).await?;
        manager.cancel_actor().await?;
        Ok(())
    })
    .await
}
