//! Supervision: a pool of worker daemons that comes back from crashes.
//!
//! Each worker is its own process, so a crash in native code (here an
//! `abort()`, as a segfaulting C library would) takes down that worker
//! and nothing else. The nursery is opened with a one_for_one
//! [`Supervisor`]: the crashed worker is restarted as a new process under
//! the same name and uid, the portal the pool holds reaches the new
//! process, and the job that was running is simply tried again.
//!
//! ```text
//! cargo run --example supervised_workers
//! ```

use std::time::Duration;

use tractor::{ActorNursery, Error, Supervisor};

/// The job that hits the "native" bug on its first run.
const POISONED: usize = 4;

/// Runs in a worker: counts the primes below `below`, the CPU work. With
/// `crash`, it dies in the middle instead, as a fault in native code
/// would.
#[tractor::rpc]
fn count_primes(below: u64, crash: bool) -> (u64, u32) {
    if crash {
        std::process::abort();
    }
    let is_prime = |n: u64| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0);
    (
        (2..below).filter(|&n| is_prime(n)).count() as u64,
        std::process::id(),
    )
}

#[tractor::rpc]
fn pid() -> u32 {
    std::process::id()
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    let supervisor = Supervisor::one_for_one().max_restarts(3, Duration::from_secs(10));
    tractor::open_nursery_with(supervisor, async |n: &ActorNursery| {
        let mut workers = Vec::new();
        for i in 0..3 {
            let worker = n
                .start_actor(format!("worker-{i}"))
                .enable_modules([module_path!()])
                .await?;
            let first_pid = worker.run(pid::call()).await?;
            workers.push((worker, first_pid));
        }
        println!("{} workers up under a one_for_one supervisor", workers.len());

        let jobs = [10_000, 20_000, 30_000, 40_000, 50_000, 60_000];
        // Each worker takes every third job; the three run at once.
        let runs = workers.iter().enumerate().map(|(w, (worker, first_pid))| async move {
            let mut lines = Vec::new();
            for (job, &below) in jobs.iter().enumerate().filter(|(job, _)| job % 3 == w) {
                let mut crash = job == POISONED;
                loop {
                    match worker.run(count_primes::call(below, crash)).await {
                        Ok((count, pid)) => {
                            let process = if pid == *first_pid { "" } else { ", restarted" };
                            let name = worker.uid().name();
                            lines.push((job, format!("job {job}: {count} primes below {below} (on {name}{process})")));
                            break;
                        }
                        // The call in flight dies with the worker; the
                        // same portal reaches its replacement.
                        Err(Error::Disconnected { actor }) => {
                            let name = actor.name();
                            lines.push((job, format!("job {job}: {name} crashed; retrying the job")));
                            crash = false;
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
            Ok(lines)
        });
        let mut lines: Vec<_> = futures::future::try_join_all(runs)
            .await?
            .into_iter()
            .flatten()
            .collect();
        // In job order; a job's crash comes before its retry.
        lines.sort_by_key(|(job, _)| *job);
        for (_, line) in lines {
            println!("{line}");
        }
        n.cancel().await
    })
    .await?;
    println!("all jobs done; every worker process reaped");
    Ok(())
}
