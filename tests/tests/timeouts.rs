//! Timeouts: `Call::timeout` (and the open of a `StreamCall` or a
//! `ContextCall`) bounds how long a caller waits; a call that gets no reply
//! in time is an `Error::Timeout` and its remote task is cancelled. A call
//! made while serving a call with a deadline inherits what is left of it,
//! enforced where that call runs: a stopped middle actor does not keep the
//! last one alive.
//!
//! Every remote task holds a [`Guard`] (see `tractor_tests::tally`): a test
//! learns how it ended by asking its actor through another rpc, which
//! waits for the event.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rustix::process::Signal;
use tokio::sync::watch;
use tractor::{ActorNursery, Context, Error, Portal, StreamContext};
use tractor_tests::tally::{self, Guard, Tally, pid, ping, tally_now, wait_cancelled};
use tractor_tests::within;
use tractor_tests::{is_alive, signal};

const HOUR_MS: u64 = 3_600_000;
/// The timeout most tests set.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How late after its timeout a call may still end.
const SLACK: Duration = Duration::from_secs(2);

// --- remote functions -----------------------------------------------------

/// Sleeps `ms`, then returns it.
#[tractor::rpc]
async fn nap(ms: u64) -> u64 {
    let guard = Guard::new();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    guard.finish();
    ms
}

/// Its first item after `first_after_ms`, then `n - 1` more every
/// `every_ms`.
#[tractor::stream]
async fn late_ticks(
    ctx: StreamContext<u64>,
    first_after_ms: u64,
    every_ms: u64,
    n: u64,
) -> tractor::Result<()> {
    let guard = Guard::new();
    tokio::time::sleep(Duration::from_millis(first_after_ms)).await;
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(every_ms)).await;
        }
        ctx.send_yield(i).await?;
    }
    guard.finish();
    Ok(())
}

/// Never calls started.
#[tractor::context]
async fn never_starts(_ctx: Context<(), (), ()>) -> tractor::Result<()> {
    let guard = Guard::new();
    std::future::pending::<()>().await;
    guard.finish();
    Ok(())
}

/// Starts at once, then lives `linger_ms` more before returning it.
#[tractor::context]
async fn starts_then_lingers(ctx: Context<(), (), ()>, linger_ms: u64) -> tractor::Result<u64> {
    let guard = Guard::new();
    ctx.started(()).await?;
    tokio::time::sleep(Duration::from_millis(linger_ms)).await;
    guard.finish();
    Ok(linger_ms)
}

/// What is left of the deadline of the call this task serves, in ms.
fn deadline_left_ms() -> Option<u64> {
    tractor::current_deadline().map(|deadline| {
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64
    })
}

#[tractor::rpc]
async fn deadline_left() -> Option<u64> {
    deadline_left_ms()
}

/// What `hold` saw of its deadline when it began (outer `None`: it has not
/// begun in this actor).
static HELD: LazyLock<watch::Sender<Option<Option<u64>>>> =
    LazyLock::new(|| watch::Sender::new(None));

/// In actor `c`: records its deadline, then waits until cancelled.
#[tractor::rpc]
async fn hold() {
    let guard = Guard::new();
    HELD.send_replace(Some(deadline_left_ms()));
    std::future::pending::<()>().await;
    guard.finish();
}

/// Waits until `hold` has begun here: what it saw of its deadline.
#[tractor::rpc]
async fn held_deadline() -> Option<u64> {
    let seen = *HELD
        .subscribe()
        .wait_for(Option::is_some)
        .await
        .expect("a static sender");
    seen.flatten()
}

/// In actor `b`: calls `hold` in actor `c`, setting no timeout of its own.
#[tractor::rpc]
async fn forward_hold() -> tractor::Result<()> {
    let c = tractor::wait_for_actor("c").await?;
    c.run(hold::call()).await
}

/// In actor `b`: what is left of its own deadline, and of the deadline
/// `deadline_left` in actor `c` sees, called with `own_timeout_ms` if set.
#[tractor::rpc]
async fn ask_c(own_timeout_ms: Option<u64>) -> tractor::Result<(Option<u64>, Option<u64>)> {
    let mine = deadline_left_ms();
    let c = tractor::wait_for_actor("c").await?;
    let call = match own_timeout_ms {
        Some(ms) => deadline_left::call().timeout(Duration::from_millis(ms)),
        None => deadline_left::call(),
    };
    Ok((mine, c.run(call).await?))
}

/// In actor `b`: naps an hour in actor `c` with its own timeout; whether
/// that timed out and after how long.
#[tractor::rpc]
async fn nap_in_c(own_timeout_ms: u64) -> tractor::Result<(bool, u64)> {
    let c = tractor::wait_for_actor("c").await?;
    let started = Instant::now();
    let outcome = c
        .run(nap::call(HOUR_MS).timeout(Duration::from_millis(own_timeout_ms)))
        .await;
    let elapsed = started.elapsed().as_millis() as u64;
    match outcome {
        Err(err) if err.is_timeout() => Ok((true, elapsed)),
        Err(err) => Err(err),
        Ok(_) => Ok((false, elapsed)),
    }
}

// --- helpers --------------------------------------------------------------

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name)
        .enable_modules([module_path!(), tally::MODULE])
        .await
}

/// Asserts that a call that ended after `elapsed` ended by its `timeout`.
fn assert_timed(elapsed: Duration, timeout: Duration) {
    assert!(
        elapsed >= timeout,
        "ended after {elapsed:?}, before its timeout {timeout:?}"
    );
    assert!(
        elapsed < timeout + SLACK,
        "ended after {elapsed:?}, long after its timeout {timeout:?}"
    );
}

/// Resumes a stopped process when dropped (a failing test leaves nothing
/// stopped).
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, Signal::STOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, Signal::CONT);
    }
}

// --- tests ----------------------------------------------------------------

#[tractor::test]
async fn a_call_past_its_timeout_is_a_timeout_and_its_task_is_cancelled() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let napper = daemon(n, "napper").await?;
        let started = Instant::now();
        let outcome = within(
            "the timed-out call",
            napper.run(nap::call(HOUR_MS).timeout(TIMEOUT)),
        )
        .await;
        let elapsed = started.elapsed();
        let err = outcome.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(matches!(err, Error::Timeout), "{err:?}");
        assert_timed(elapsed, TIMEOUT);
        let tally = within(
            "the napper's cancellation",
            napper.run(wait_cancelled::call(1)),
        )
        .await?;
        assert_eq!(tally.finished, 0, "{tally:?}");
        assert_eq!(napper.run(ping::call()).await?, "pong");
        napper.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn a_call_within_its_timeout_succeeds() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let napper = daemon(n, "quick").await?;
        assert_eq!(
            napper
                .run(nap::call(10).timeout(Duration::from_secs(5)))
                .await?,
            10
        );
        // Its deadline does not outlive it: the next call has none.
        assert_eq!(napper.run(deadline_left::call()).await?, None);
        let tally = napper.run(tally_now::call()).await?;
        assert_eq!(
            tally,
            Tally {
                live: 0,
                finished: 1,
                cancelled: 0
            }
        );
        napper.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn run_in_actor_with_a_timed_out_call_fails_the_nursery_with_a_timeout() {
    let mut checked = None;
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let before = Instant::now();
        let napper = n
            .run_in_actor("napper", nap::call(HOUR_MS).timeout(TIMEOUT))
            .enable_modules([tally::MODULE])
            .await?;
        let spawned = Instant::now();
        let napper_pid = napper.run(pid::call()).await?;
        let err = within("the timed-out result", napper.result())
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(before.elapsed() >= TIMEOUT, "{:?}", before.elapsed());
        assert!(
            spawned.elapsed() < TIMEOUT + SLACK,
            "{:?}",
            spawned.elapsed()
        );
        checked = Some(napper_pid);
        Ok(())
    })
    .await
    .unwrap_err();
    let napper_pid = checked.expect("the body saw the result's timeout");
    assert!(err.is_timeout(), "{err:?}");
    assert!(!is_alive(napper_pid), "the napper outlived its nursery");
}

#[tractor::test]
async fn a_stream_timeout_bounds_its_first_item_only() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let ticker = daemon(n, "ticker").await?;

        // The first item never comes.
        let started = Instant::now();
        let call = late_ticks::call(HOUR_MS, 0, 10).timeout(TIMEOUT);
        let err = match within("the stream's open", ticker.open_stream(call)).await {
            Err(err) => err,
            Ok(mut stream) => {
                let first = within("the first item", stream.next()).await;
                let err = match first {
                    Some(Err(err)) => err,
                    other => panic!("expected an Err item, got {other:?}"),
                };
                assert!(stream.next().await.is_none(), "the error ends the stream");
                err
            }
        };
        assert!(err.is_timeout(), "{err:?}");
        assert_timed(started.elapsed(), TIMEOUT);
        let tally = within(
            "the producer's cancellation",
            ticker.run(wait_cancelled::call(1)),
        )
        .await?;
        assert_eq!(tally.finished, 0, "{tally:?}");

        // The first item comes in time: the stream goes on, well past the
        // timeout, to its end.
        let started = Instant::now();
        let call = late_ticks::call(0, 100, 15).timeout(Duration::from_millis(300));
        let items: Vec<u64> = within(
            "the whole stream",
            ticker.open_stream(call).await?.collect::<Vec<_>>(),
        )
        .await
        .into_iter()
        .collect::<tractor::Result<_>>()?;
        assert_eq!(items, (0..15).collect::<Vec<_>>());
        assert!(
            started.elapsed() >= Duration::from_millis(1400),
            "{:?}",
            started.elapsed()
        );
        let tally = ticker.run(tally_now::call()).await?;
        assert_eq!(tally.finished, 1, "{tally:?}");
        assert_eq!(ticker.run(ping::call()).await?, "pong");
        ticker.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn a_context_timeout_bounds_started_only() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let portal = daemon(n, "starter").await?;

        // Never started.
        let started = Instant::now();
        let opened = within(
            "the context's open",
            portal.open_context(never_starts::call().timeout(TIMEOUT)),
        )
        .await;
        let err = opened.map(|_| ()).unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_timed(started.elapsed(), TIMEOUT);
        let tally = within(
            "the callee's cancellation",
            portal.run(wait_cancelled::call(1)),
        )
        .await?;
        assert_eq!(tally.finished, 0, "{tally:?}");

        // Started in time: the context lives past the timeout and returns.
        let (cx, ()) = portal
            .open_context(starts_then_lingers::call(1000).timeout(Duration::from_millis(300)))
            .await?;
        assert_eq!(within("the lingering result", cx.result()).await?, 1000);
        assert_eq!(portal.run(tally_now::call()).await?.finished, 1);
        assert_eq!(portal.run(ping::call()).await?, "pong");
        portal.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// root → b (timeout 5 s) → c: b sees its deadline; c inherits what is
/// left of it unless b sets its own, which then bounds c's call; a call
/// with no timeout anywhere has no deadline.
#[tractor::test]
async fn calls_made_while_serving_a_deadline_inherit_it() -> tractor::Result<()> {
    assert_eq!(tractor::current_deadline(), None, "the test's own task");
    tractor::open_nursery(async |n: &ActorNursery| {
        let b = daemon(n, "b").await?;
        let c = daemon(n, "c").await?;

        assert_eq!(b.run(ask_c::call(None)).await?, (None, None));

        let outer = Duration::from_secs(5);
        let (mine, theirs) = b.run(ask_c::call(None).timeout(outer)).await?;
        let mine = mine.expect("b serves a call with a deadline");
        let theirs = theirs.expect("c inherits b's deadline");
        assert!((4000..=5000).contains(&mine), "b has {mine} ms left");
        assert!(
            theirs <= mine && theirs >= 3000,
            "c has {theirs} ms left of b's {mine}"
        );

        let (_, theirs) = b.run(ask_c::call(Some(300)).timeout(outer)).await?;
        let theirs = theirs.expect("c serves b's own deadline");
        assert!(theirs <= 300, "c has {theirs} ms left of b's own 300");

        // b's own, shorter timeout ends c's nap, and b sees the timeout.
        let (timed_out, elapsed_ms) = b.run(nap_in_c::call(300).timeout(outer)).await?;
        assert!(timed_out, "b's call to c did not time out");
        assert_timed(
            Duration::from_millis(elapsed_ms),
            Duration::from_millis(300),
        );
        within("c's nap's cancellation", c.run(wait_cancelled::call(1))).await?;

        b.cancel_actor().await?;
        c.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// root → b (timeout 1 s) → c (no timeout): c's task is cancelled when the
/// outermost deadline passes even though b, stopped by SIGSTOP just after
/// c's task began, can neither time out nor pass a cancel on.
#[tractor::test]
async fn an_inherited_deadline_is_enforced_where_the_call_runs() -> tractor::Result<()> {
    const OUTER: Duration = Duration::from_secs(1);
    tractor::open_nursery(async |n: &ActorNursery| {
        let b = daemon(n, "b").await?;
        let c = daemon(n, "c").await?;
        let b_pid = b.run(pid::call()).await?;

        let started = Instant::now();
        let chain = b.run(forward_hold::call().timeout(OUTER));
        let observe = async {
            let left = c
                .run(held_deadline::call())
                .await?
                .expect("c's task inherits a deadline");
            assert!(
                (200..=OUTER.as_millis() as u64).contains(&left),
                "c has {left} ms left of {OUTER:?}"
            );
            let stopped = Stopped::stop(b_pid);
            assert!(
                started.elapsed() < OUTER,
                "b was stopped only after the deadline ({:?}): nothing is proved",
                started.elapsed()
            );
            let tally = within("c's task's cancellation", c.run(wait_cancelled::call(1))).await?;
            let fired = started.elapsed();
            assert_eq!(tally.finished, 0, "{tally:?}");
            // Not before the deadline (a deadline passed on as a duration
            // only ever ends later), and not much after it.
            assert!(
                fired >= OUTER - Duration::from_millis(20),
                "c's task was cancelled after {fired:?}, before the deadline"
            );
            assert!(
                fired < OUTER + Duration::from_millis(1500),
                "c's task was cancelled only after {fired:?}"
            );
            drop(stopped);
            Ok::<(), Error>(())
        };
        let (outcome, observed) = within("the chain and its observer", async {
            tokio::join!(chain, observe)
        })
        .await;
        observed?;
        let err = outcome.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(b.run(ping::call()).await?, "pong");
        assert_eq!(c.run(ping::call()).await?, "pong");
        b.cancel_actor().await?;
        c.cancel_actor().await?;
        Ok(())
    })
    .await
}
