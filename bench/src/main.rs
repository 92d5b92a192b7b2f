//! tractor's benchmark suite: spawning, calling, streaming, teardown and
//! memory, each a median over repeated runs and printed next to the raw
//! floor it is compared with, measured in the same run.
//!
//! ```text
//! cargo run --release -p tractor-bench            # everything
//! cargo run --release -p tractor-bench -- stream  # one section:
//!                                                 # spawn, call, stream, context,
//!                                                 # teardown, panic, memory
//! cargo run --release -p tractor-bench -- cycles-forkserver
//!                                                 # 2000 whole spawn cycles
//!                                                 # alone, for a profiler
//! cargo run --release -p tractor-bench -- restarts-forkserver
//!                                                 # 1000 restarts alone
//! cargo run --release -p tractor-bench -- hosts   # across three network
//!                                                 # namespaces (root only)
//! ```
//!
//! The floors run their far ends in this executable started again (see
//! [`floors`]), so every figure crosses a real process boundary.

mod floors;
mod hosts;
mod measures;
mod stats;

use std::time::Duration;

use stats::{Rate, median, median_rate, percentile};
use tractor::StartMethod;

fn main() -> tractor::Result<()> {
    // procspawn's children run their closure from here and exit.
    procspawn::init();
    // A floor's far end runs before tractor starts, so that the re-exec
    // floor is a bare re-exec.
    if floors::run_helper() {
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("hosts") {
        // Builds the hosts, then runs `hosts-inner` on one of them.
        hosts::outer();
        return Ok(());
    }
    bench()
}

fn wanted(section: &str) -> bool {
    match std::env::args().nth(1) {
        Some(only) => only == section,
        None => true,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn row(measure: &str, tractor: String, floor: String, ratio: String, target: &str) {
    println!("| {measure} | {tractor} | {floor} | {ratio} | {target} |");
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

fn rate_row(measure: &str, rate: Rate, floor: Rate, target: &str) {
    row(
        measure,
        format!(
            "{:.2} M msgs/s, {:.0} MB/s",
            rate.items_per_sec / 1e6,
            rate.bytes_per_sec / 1e6
        ),
        format!(
            "{:.2} M msgs/s, {:.0} MB/s",
            floor.items_per_sec / 1e6,
            floor.bytes_per_sec / 1e6
        ),
        ratio(rate.items_per_sec, floor.items_per_sec),
        target,
    );
}

/// Interleaved rounds of the spawn section's headline rows.
const ROUNDS: usize = 10;
const PER_ROUND: usize = 20;

/// The rows of whole spawn cycles: the cycle against the floor, then where
/// it went; returns the cycle's median.
fn cycle_rows(
    method: StartMethod,
    cycles: &mut [measures::Cycle],
    runs: &str,
    (floor_med, reaped_med): (Duration, Duration),
    target: &str,
) -> Duration {
    let phase = |pick: fn(&measures::Cycle) -> Duration| {
        median(&mut cycles.iter().map(pick).collect::<Vec<_>>())
    };
    let mut cycle: Vec<Duration> = cycles.iter().map(|cycle| cycle.reaped).collect();
    let cycle_med = median(&mut cycle);
    row(
        &format!(
            "spawn ({method}): whole cycle, open_nursery to nursery returned, child reaped \
             ({runs}; p99)"
        ),
        format!(
            "{} (p99 {})",
            ms(cycle_med),
            ms(percentile(&mut cycle, 0.99))
        ),
        format!(
            "{} (bare re-exec, connect back; {} to reaped, ratio {})",
            ms(floor_med),
            ms(reaped_med),
            ratio(cycle_med.as_secs_f64(), reaped_med.as_secs_f64())
        ),
        ratio(cycle_med.as_secs_f64(), floor_med.as_secs_f64()),
        target,
    );
    let (connected, answered) = (phase(|c| c.connected), phase(|c| c.answered));
    row(
        &format!(
            "spawn ({method}): where the whole cycle goes, medians from its start (same runs)"
        ),
        format!(
            "connected {}, answered {}, reaped {}",
            ms(connected),
            ms(answered),
            ms(cycle_med)
        ),
        format!("{} (bare re-exec, connect back)", ms(floor_med)),
        format!("teardown {}", ms(cycle_med.saturating_sub(answered))),
        "-",
    );
    cycle_med
}

#[tractor::main(enable_modules = [module_path!()])]
async fn bench() -> tractor::Result<()> {
    println!("| measure | tractor (median) | floor (median, same run) | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");

    if std::env::args().nth(1).as_deref() == Some("hosts-inner") {
        let b = std::env::args().nth(2).unwrap_or_default();
        return hosts::inner(&b).await;
    }

    if let Some(method) = std::env::args().nth(1).and_then(|arg| {
        arg.strip_prefix("cycles-")
            .and_then(|method| method.parse::<StartMethod>().ok())
    }) {
        // For a profiler: whole spawn cycles and nothing else.
        let cycles = measures::spawn_whole_cycle(2000, method, Duration::ZERO).await?;
        let mut reaped: Vec<Duration> = cycles.iter().map(|cycle| cycle.reaped).collect();
        println!(
            "| {method}: 2000 whole cycles | {} | - | - | - |",
            ms(median(&mut reaped))
        );
    }
    if let Some(method) = std::env::args().nth(1).and_then(|arg| {
        arg.strip_prefix("restarts-")
            .and_then(|method| method.parse::<StartMethod>().ok())
    }) {
        // For a profiler: restarts of a supervised daemon and nothing else.
        let mut restarts = measures::restart_latency(1000, method).await?;
        println!(
            "| {method}: 1000 restarts | {} | - | - | - |",
            ms(median(&mut restarts))
        );
    }

    if wanted("spawn") {
        // The floor, procspawn and both back-to-back whole cycles in
        // interleaved rounds, so that a machine whose speed drifts during
        // the run (this one's floor moves by a third between runs) weighs
        // on each of them alike.
        let mut interleaved = measures::Interleaved::default();
        for _ in 0..ROUNDS {
            interleaved.round(PER_ROUND).await?;
        }
        let measures::Interleaved {
            mut floor,
            mut floor_reaped,
            mut peer,
            mut exec,
            mut forkserver,
        } = interleaved;
        let floor_med = median(&mut floor);
        let reaped_med = median(&mut floor_reaped);
        let runs = ROUNDS * PER_ROUND;
        row(
            &format!(
                "floor: bare re-exec of this program, connected back; and on until reaped \
                 ({runs} runs in {ROUNDS} rounds, interleaved with the next three rows; p99)"
            ),
            format!(
                "{} (p99 {}); reaped {}",
                ms(floor_med),
                ms(percentile(&mut floor, 0.99)),
                ms(reaped_med)
            ),
            "-".into(),
            "-".into(),
            "-",
        );
        let peer_med = median(&mut peer);
        row(
            &format!(
                "procspawn 1.0: spawn + join of a trivial closure, child reaped ({runs} runs, \
                 interleaved; p99)"
            ),
            format!("{} (p99 {})", ms(peer_med), ms(percentile(&mut peer, 0.99))),
            format!("{} (bare re-exec, connect back)", ms(floor_med)),
            ratio(peer_med.as_secs_f64(), floor_med.as_secs_f64()),
            "-",
        );
        let mut whole = Vec::new();
        for (method, cycles, target) in [
            (StartMethod::Exec, &mut exec, "<= 1.3x floor"),
            (StartMethod::ForkServer, &mut forkserver, "<= 0.6x floor"),
        ] {
            let cycle_med = cycle_rows(
                method,
                cycles,
                &format!("{runs} runs back to back, interleaved"),
                (floor_med, reaped_med),
                target,
            );
            whole.push((method, cycle_med));
        }
        for (method, target) in [
            (StartMethod::Exec, "<= 2x floor"),
            (StartMethod::ForkServer, "<= 1 ms"),
        ] {
            let mut one = measures::spawn_to_result(200, method).await?;
            let one_med = median(&mut one);
            row(
                &format!("spawn ({method}): run_in_actor to result(), 1 actor (200 runs; p99)"),
                format!("{} (p99 {})", ms(one_med), ms(percentile(&mut one, 0.99))),
                format!("{} (bare re-exec, connect back)", ms(floor_med)),
                ratio(one_med.as_secs_f64(), floor_med.as_secs_f64()),
                target,
            );
        }
        for method in [StartMethod::Exec, StartMethod::ForkServer] {
            let mut cycles =
                measures::spawn_whole_cycle(200, method, Duration::from_millis(10)).await?;
            cycle_rows(
                method,
                &mut cycles,
                "200 runs, 10 ms apart",
                (floor_med, reaped_med),
                "-",
            );
        }
        for (method, cycle_med) in whole {
            let mut restart = measures::restart_latency(200, method).await?;
            let restart_med = median(&mut restart);
            row(
                &format!(
                    "restart ({method}): SIGKILL of a supervised daemon to the first call its new \
                     process answers, same portal (200 runs; p99)"
                ),
                format!(
                    "{} (p99 {})",
                    ms(restart_med),
                    ms(percentile(&mut restart, 0.99))
                ),
                format!(
                    "{} (whole spawn cycle, interleaved rows above)",
                    ms(cycle_med)
                ),
                ratio(restart_med.as_secs_f64(), cycle_med.as_secs_f64()),
                "<= 3x whole cycle",
            );
        }
        for method in [StartMethod::Exec, StartMethod::ForkServer] {
            let mut fifty = measures::spawn_many(50, 10, method).await?;
            row(
                &format!("spawn ({method}): 50 actors at once, answered and reaped (10 runs)"),
                ms(median(&mut fifty)),
                "-".into(),
                "-".into(),
                "<= 150 ms",
            );
        }
    }

    if wanted("call") {
        let mut floor = floors::ping_pong(20_000).await?;
        let (mut trips, per_sec) = measures::calls(20_000, 200_000, 64).await?;
        let (trip, floor_trip) = (median(&mut trips), median(&mut floor));
        row(
            "call: sequential portal.run round trip (20,000; p99)",
            format!("{} (p99 {})", us(trip), us(percentile(&mut trips, 0.99))),
            format!("{} (raw tokio TCP ping-pong)", us(floor_trip)),
            ratio(trip.as_secs_f64(), floor_trip.as_secs_f64()),
            "<= 1.3x floor",
        );
        let mut unix = floors::ping_pong_unix(20_000).await?;
        let unix_trip = median(&mut unix);
        row(
            "floor: raw ping-pong over a Unix socket instead (20,000)",
            us(unix_trip),
            format!("{} (TCP)", us(floor_trip)),
            ratio(unix_trip.as_secs_f64(), floor_trip.as_secs_f64()),
            "(transport choice)",
        );
        row(
            "call: throughput, 64 calls in flight (200,000 calls)",
            format!("{:.0} k calls/s", per_sec / 1e3),
            "-".into(),
            "-".into(),
            ">= 100 k calls/s",
        );
    }

    if wanted("stream") {
        let runs = 5;
        let (small, large) = measures::streams(runs, 5_000_000, 500_000).await?;
        let mut raw_small = Vec::new();
        let mut raw_large = Vec::new();
        for _ in 0..runs {
            raw_small.push(floors::raw_stream(0, 5_000_000).await?);
            raw_large.push(floors::raw_stream(1024, 500_000).await?);
        }
        let raw_small = median_rate(raw_small);
        rate_row(
            "stream: u64 items (5 M, 5 runs)",
            median_rate(small),
            raw_small,
            ">= 0.35x floor",
        );
        rate_row(
            "stream: 1 KiB items (500 k, 5 runs)",
            median_rate(large),
            median_rate(raw_large),
            ">= 1 GB/s",
        );
        let (to_caller, to_callee) = measures::msg_streams(runs, 5_000_000).await?;
        rate_row(
            "context: MsgStream u64 items, function to caller (5 M, 5 runs)",
            median_rate(to_caller),
            raw_small,
            ">= 0.35x floor",
        );
        rate_row(
            "context: MsgStream u64 items, caller to function (5 M, 5 runs)",
            median_rate(to_callee),
            raw_small,
            ">= 0.35x floor",
        );
    }

    if wanted("context") {
        let (mut echoes, mut calls) = measures::context_echo(20_000).await?;
        let (echo, call) = (median(&mut echoes), median(&mut calls));
        row(
            "context: echo round trip over a MsgStream, p50 (20,000; p99)",
            format!("{} (p99 {})", us(echo), us(percentile(&mut echoes, 0.99))),
            format!("{} (portal.run to the same actor, interleaved)", us(call)),
            ratio(echo.as_secs_f64(), call.as_secs_f64()),
            "<= 1.3x call",
        );
    }

    if wanted("teardown") {
        let mut teardown = measures::teardown(10, 20).await?;
        row(
            "teardown: 10 idle daemons + 1 failing child, failure to all reaped (20 runs)",
            ms(median(&mut teardown)),
            "-".into(),
            "-".into(),
            "<= 20 ms",
        );
    }

    if wanted("teardown") || wanted("panic") {
        let backtrace = std::env::var("RUST_BACKTRACE").unwrap_or_else(|_| "unset".into());
        let mut teardown = measures::panic_teardown(20).await?;
        row(
            &format!(
                "teardown after a panic (RUST_BACKTRACE={backtrace}): call to nursery \
                 returned, daemon reaped (20 runs)"
            ),
            ms(median(&mut teardown)),
            "-".into(),
            "-".into(),
            "<= 20 ms",
        );
    }

    if wanted("memory") {
        for method in [StartMethod::Exec, StartMethod::ForkServer] {
            let mut sizes = measures::idle_rss(5, method).await?;
            sizes.sort();
            row(
                &format!("memory ({method}): resident set size of an idle child actor (5 actors)"),
                format!(
                    "{:.2} MiB",
                    sizes[sizes.len() / 2] as f64 / (1 << 20) as f64
                ),
                "-".into(),
                "-".into(),
                "<= 5 MiB",
            );
        }
    }
    Ok(())
}
