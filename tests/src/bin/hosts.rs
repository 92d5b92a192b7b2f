//! A root for tests across hosts (see `tractor_tests::netns`): run in
//! host `a` as `hosts <scenario> <b's url> <c's url>`, it places actors on
//! `b` and `c` through ssh and prints what it saw, a line per fact; the
//! test reads the lines. The actors it places are this same program,
//! started there by ssh.

use futures::StreamExt;
use tractor::ActorNursery;

const HERE: [&str; 1] = [module_path!()];

/// The address this actor's host sends from towards `towards` (a UDP
/// socket connected there sends nothing, but picks its source), and its
/// pid.
#[tractor::rpc]
async fn where_am_i(towards: String) -> tractor::Result<String> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(tractor::Error::other)?;
    socket
        .connect((towards.as_str(), 9))
        .map_err(tractor::Error::other)?;
    let here = socket.local_addr().map_err(tractor::Error::other)?.ip();
    Ok(format!("{here} pid {}", std::process::id()))
}

/// Fails, as a call: its error goes back to the caller.
#[tractor::rpc]
async fn fail_here(what: String) -> Result<u32, String> {
    Err(format!("{what} failed on purpose"))
}

/// Counts from 0 to `n - 1`.
#[tractor::stream]
fn count(n: u64) -> impl futures::Stream<Item = u64> {
    futures::stream::iter(0..n)
}

/// Finds `peer` by name and sums the stream it counts.
#[tractor::rpc]
async fn sum_from(peer: String, n: u64) -> tractor::Result<u64> {
    let peer = tractor::wait_for_actor(&peer).await?;
    let mut items = peer.open_stream(count::call(n)).await?;
    let mut sum = 0;
    while let Some(item) = items.next().await {
        sum += item?;
    }
    Ok(sum)
}

/// This host's address, where the others reach it (`TRACTOR_HOST`).
fn home() -> tractor::Result<String> {
    std::env::var(tractor::HOST_ENV).map_err(tractor::Error::other)
}

/// Daemons `on-b` and `on-c` on hosts `b` and `c`; prints a line
/// `on-b at ADDRESS pid PID` for each.
async fn place_both(
    n: &ActorNursery,
    b: &str,
    c: &str,
    home: &str,
) -> tractor::Result<(tractor::Portal, tractor::Portal)> {
    let on_b = n.start_actor("on-b").host(b).enable_modules(HERE).await?;
    let on_c = n.start_actor("on-c").host(c).enable_modules(HERE).await?;
    for (name, portal) in [("on-b", &on_b), ("on-c", &on_c)] {
        let at = portal.run(where_am_i::call(home.to_owned())).await?;
        println!("{name} at {at}");
    }
    Ok((on_b, on_c))
}

/// Each of `on-b` and `on-c` finds the other by name and sums what it
/// streams; the sums printed.
async fn stream_both_ways(on_b: &tractor::Portal, on_c: &tractor::Portal) -> tractor::Result<()> {
    let summed = on_b.run(sum_from::call("on-c".into(), 100)).await?;
    println!("on-b summed {summed}");
    let summed = on_c.run(sum_from::call("on-b".into(), 10)).await?;
    println!("on-c summed {summed}");
    Ok(())
}

/// `place`: a daemon on each of `b` and `c`; where each runs; each
/// streams from the other, found by name; a call's error raised on `b`;
/// a `run_in_actor` on `c`.
async fn place(b: &str, c: &str) -> tractor::Result<()> {
    let home = home()?;
    tractor::open_nursery(async |n: &ActorNursery| {
        let (on_b, on_c) = place_both(n, b, c, &home).await?;
        stream_both_ways(&on_b, &on_c).await?;
        match on_b.run(fail_here::call("the call on b".into())).await {
            Err(tractor::Error::Remote(err)) => println!(
                "on-b raised {}: {} (from {})",
                err.type_name(),
                err.message(),
                err.actor().name()
            ),
            other => println!("on-b gave {other:?}"),
        }
        let job = n
            .run_in_actor("job-on-c", where_am_i::call(home.clone()))
            .host(c)
            .await?;
        println!("job-on-c at {}", job.result().await?);
        on_b.cancel_actor().await?;
        on_c.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// `hold`: a daemon on each of `b` and `c`, their pids printed, then
/// waits to be killed.
async fn hold(b: &str, c: &str) -> tractor::Result<()> {
    let home = home()?;
    tractor::open_nursery(async |n: &ActorNursery| {
        let _daemons = place_both(n, b, c, &home).await?;
        println!("holding");
        std::future::pending().await
    })
    .await
}

/// `cancel`: supervised daemons on `b` and `c`, and a `run_in_actor` on
/// `b` that never ends; `n.cancel()` ends them all, restarting none, and
/// returns once all are reaped.
async fn cancel(b: &str, c: &str) -> tractor::Result<()> {
    let home = home()?;
    let supervisor = tractor::Supervisor::one_for_one();
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let _daemons = place_both(n, b, c, &home).await?;
        let _job = n
            .run_in_actor("job-on-b", sleep_forever::call())
            .host(b)
            .await?;
        let started = std::time::Instant::now();
        n.cancel().await?;
        println!("cancelled in {} ms", started.elapsed().as_millis());
        Ok(())
    })
    .await
}

/// `restart`: a supervised daemon on `b`, killed (SIGKILL: the hosts share
/// a pid namespace), answers again through the same portal from a new
/// process on `b`.
async fn restart(b: &str) -> tractor::Result<()> {
    let home = home()?;
    let supervisor = tractor::Supervisor::one_for_one();
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let on_b = n.start_actor("on-b").host(b).enable_modules(HERE).await?;
        let first = on_b.run(where_am_i::call(home.clone())).await?;
        println!("on-b at {first}");
        let pid: i32 = first
            .rsplit(' ')
            .next()
            .and_then(|pid| pid.parse().ok())
            .unwrap_or(0);
        // SAFETY: a plain system call.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        loop {
            match on_b.run(where_am_i::call(home.clone())).await {
                Ok(again) if again != first => {
                    println!("on-b again at {again}");
                    break;
                }
                // The call in flight at the kill fails; the next waits
                // for the new process.
                Ok(_) | Err(_) => continue,
            }
        }
        on_b.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// An item every 50 ms, forever.
#[tractor::stream]
fn ticks() -> impl futures::Stream<Item = u64> {
    futures::stream::unfold(0u64, async |n| {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Some((n, n + 1))
    })
}

/// Sleeps until cancelled.
#[tractor::rpc]
async fn sleep_forever() {
    std::future::pending::<()>().await
}

/// `cut`: a daemon on `b` serving a call that never ends; once the test has
/// cut `b`'s link, the call fails and the nursery with it, within the
/// heartbeat timeout.
async fn cut(b: &str) -> tractor::Result<()> {
    let home = home()?;
    let outcome = tractor::open_nursery(async |n: &ActorNursery| {
        let on_b = n.start_actor("on-b").host(b).enable_modules(HERE).await?;
        let at = on_b.run(where_am_i::call(home.clone())).await?;
        println!("on-b at {at}");
        // Idle for 2.5 heartbeat timeouts: heartbeats alone keep the
        // channel, and the same process answers.
        tokio::time::sleep(HEARTBEAT.1 * 5 / 2).await;
        let again = on_b.run(where_am_i::call(home.clone())).await?;
        println!("idle kept: {}", again == at);
        let mut ticks = on_b.open_stream(ticks::call()).await?;
        ticks.next().await.transpose()?;
        println!("cut now");
        let started = std::time::Instant::now();
        let call = async {
            let ended = on_b.run(sleep_forever::call()).await;
            (ended, started.elapsed())
        };
        let stream = async {
            // Items until the cut; then its end, which must be an error.
            let last = loop {
                match ticks.next().await {
                    Some(Ok(_)) => continue,
                    other => break other,
                }
            };
            (last, started.elapsed())
        };
        let ((ended, call_took), (last, stream_took)) = futures::join!(call, stream);
        println!(
            "call ended after {} ms: {}",
            call_took.as_millis(),
            match &ended {
                Ok(()) => "Ok".to_string(),
                Err(err) => format!("Err {err}"),
            }
        );
        println!(
            "stream ended after {} ms: {}",
            stream_took.as_millis(),
            match last {
                Some(Err(err)) => format!("Err {err}"),
                _ => "without an error".to_string(),
            }
        );
        ended
    })
    .await;
    match outcome {
        Err(err) => println!("nursery failed: {err}"),
        Ok(()) => println!("nursery returned Ok"),
    }
    Ok(())
}

/// `registrar`: a root that is one of the tree's registrars (the one at
/// its host's address), and nothing else, until killed.
async fn registrar() -> tractor::Result<()> {
    let actor = tractor::current_actor();
    println!("registrar {}", actor.is_registrar());
    std::future::pending().await
}

/// `survive`: with registrars on `a` and `b` (each its own program),
/// daemons on `b` and `c`; once the test has killed the registrar on `a`
/// and says so on stdin, they still find each other and stream, and so
/// does this root, through the registrar on `b`.
async fn survive(b: &str, c: &str) -> tractor::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let home = home()?;
    tractor::open_nursery(async |n: &ActorNursery| {
        let (on_b, on_c) = place_both(n, b, c, &home).await?;
        stream_both_ways(&on_b, &on_c).await?;
        println!("placed");
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let said = stdin.next_line().await.map_err(tractor::Error::other)?;
        println!("told {}", said.unwrap_or_default());
        stream_both_ways(&on_b, &on_c).await?;
        let found = tractor::find_actor("on-c").await?;
        println!("root found on-c: {}", found.is_some());
        on_b.cancel_actor().await?;
        on_c.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// `chaos`: supervised daemons on `b` and `c`, and commands on stdin from
/// a test that kills them and cuts their links: `check` answers once both
/// answer again through the same portals (`answered on-b at .. on-c at
/// ..`), `end` stops them.
async fn chaos(b: &str, c: &str) -> tractor::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let home = home()?;
    // A backoff, as for any daemon on another host: while a host is cut
    // off, each restart fails at once (no route), and without one they
    // would use the intensity up in a second.
    let supervisor = tractor::Supervisor::one_for_one()
        .max_restarts(1000, std::time::Duration::from_secs(60))
        .backoff(std::time::Duration::from_millis(20))
        .max_backoff(std::time::Duration::from_millis(500));
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let (on_b, on_c) = place_both(n, b, c, &home).await?;
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(command) = stdin.next_line().await.map_err(tractor::Error::other)? {
            match command.as_str() {
                "check" => {
                    let b_at = answer_again(&on_b, &home).await?;
                    let c_at = answer_again(&on_c, &home).await?;
                    println!("answered on-b at {b_at} on-c at {c_at}");
                }
                "end" => break,
                other => println!("unknown command {other:?}"),
            }
        }
        on_b.cancel_actor().await?;
        on_c.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Where `portal`'s actor is, once it answers (within 30 s): calls in
/// flight at a kill or a cut fail, and the next go to the restarted
/// process.
async fn answer_again(portal: &tractor::Portal, home: &str) -> tractor::Result<String> {
    let started = std::time::Instant::now();
    loop {
        let call = where_am_i::call(home.to_owned()).timeout(std::time::Duration::from_secs(5));
        match portal.run(call).await {
            Ok(at) => return Ok(at),
            Err(err) if started.elapsed() > std::time::Duration::from_secs(30) => return Err(err),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

/// Doubles `x`; `hosts_drift` has a build of it taking and giving `u32`.
#[tractor::rpc(name = "hosts::drift::scale")]
async fn scale(x: u64) -> u64 {
    x * 2
}

/// `drift`: `scale` on `c` (this build) and on `b` running `hosts_drift`
/// (`.program(..)`, its path in `HOSTS_DRIFT`), where its signature
/// differs.
async fn drift(b: &str, c: &str) -> tractor::Result<()> {
    let drifted = std::env::var("HOSTS_DRIFT").map_err(tractor::Error::other)?;
    tractor::open_nursery(async |n: &ActorNursery| {
        let same = n
            .start_actor("same")
            .host(c)
            .enable_modules(["hosts::drift"])
            .await?;
        println!("same build answered {}", same.run(scale::call(21)).await?);
        let other = n
            .start_actor("drifted")
            .host(b)
            .program(drifted)
            .enable_modules(["hosts::drift"])
            .await?;
        match other.run(scale::call(21)).await {
            Err(tractor::Error::Remote(err)) => {
                println!("drifted raised {}: {}", err.type_name(), err.message())
            }
            other => println!("drifted gave {other:?}"),
        }
        same.cancel_actor().await?;
        other.cancel_actor().await?;
        Ok(())
    })
    .await
}

/// Heartbeats for the tests: fast enough that a cut shows within a second
/// or two.
const HEARTBEAT: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_millis(200),
    std::time::Duration::from_millis(1000),
);

fn main() -> tractor::Result<()> {
    tractor::Root::builder()
        .enable_modules([module_path!()])
        .heartbeat(HEARTBEAT.0, HEARTBEAT.1)
        .run(scenario())
}

async fn scenario() -> tractor::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, scenario, b, c] = args.as_slice() else {
        return Err(tractor::Error::other(
            "usage: hosts <scenario> <b's url> <c's url>",
        ));
    };
    match scenario.as_str() {
        "place" => place(b, c).await?,
        "hold" => hold(b, c).await?,
        "restart" => restart(b).await?,
        "cut" => cut(b).await?,
        "registrar" => registrar().await?,
        "survive" => survive(b, c).await?,
        "chaos" => chaos(b, c).await?,
        "drift" => drift(b, c).await?,
        "cancel" => cancel(b, c).await?,
        other => return Err(tractor::Error::other(format!("no scenario {other:?}"))),
    }
    println!("done");
    Ok(())
}
