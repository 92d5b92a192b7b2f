//! Spares: after its first spawn, an actor keeps a process ready for the
//! next (the fork server two), which becomes that child; a spawn it does
//! not fit starts afresh; the spares go with their actor. Under both
//! backends (the suite runs again with `TRACTOR_START_METHOD=forkserver`).

use std::time::{Duration, Instant};

use tractor::ActorNursery;
use tractor_tests::{descendants, exits_within, is_waiting_spare, own_slice, pid, thread_slices};

#[tractor::rpc]
async fn own_pid() -> u32 {
    pid()
}

#[tractor::rpc]
async fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

/// How many spares an actor keeps under the backend this run uses.
fn spares_kept() -> usize {
    match std::env::var(tractor::START_METHOD_ENV).as_deref() {
        Ok("forkserver") => 2,
        _ => 1,
    }
}

/// The spares waiting among this actor's descendants that it holds (a
/// pidfd on them: the actor has heard of them, and its next spawn may take
/// one), once there are as many as it keeps (a fork server makes its
/// spares when idle; nothing announces them, so this looks until a
/// deadline).
async fn waiting_spares() -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = pidfds_held();
        let spares: Vec<u32> = descendants(pid())
            .into_iter()
            .filter(|&pid| is_waiting_spare(pid) && held.contains(&pid))
            .collect();
        if spares.len() >= spares_kept() || Instant::now() > deadline {
            return spares;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The processes this one holds a pidfd on.
fn pidfds_held() -> Vec<u32> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fdinfo") else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_to_string(fd.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("Pid:"))?
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

async fn run_pid(n: &ActorNursery, name: &str) -> tractor::Result<u32> {
    n.run_in_actor(name, own_pid::call())
        .enable_modules([module_path!()])
        .await?
        .result()
        .await
}

/// An actor of its own for a test's spawns: the tests of this file share
/// a process, and so would their roots' spares.
async fn middle(n: &ActorNursery) -> tractor::Result<tractor::Portal> {
    n.start_actor("middle")
        .enable_modules([module_path!()])
        .await
}

/// The spares waiting among this actor's descendants: as many as the
/// backend keeps.
async fn the_spares() -> tractor::Result<Vec<u32>> {
    let spares = waiting_spares().await;
    if spares.len() != spares_kept() {
        return Err(tractor::Error::other(format!(
            "expected {} spares, found {spares:?}",
            spares_kept()
        )));
    }
    Ok(spares)
}

#[tractor::rpc]
async fn own_slices() -> Vec<u64> {
    thread_slices(pid())
}

async fn run_slices(n: &ActorNursery, name: &str) -> tractor::Result<Vec<u64>> {
    n.run_in_actor(name, own_slices::call())
        .enable_modules([module_path!()])
        .await?
        .result()
        .await
}

/// The time slices of spare `pid`'s threads once they are all `default`,
/// or as they are after a deadline. Found, a spare may still be starting
/// in the background (an exec'd one has its link as stdin from the
/// first); nothing outside it tells when it is ready, so this looks again
/// until then.
async fn ready_slices(pid: u32, default: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let slices = thread_slices(pid);
        let ready = !slices.is_empty() && slices.iter().all(|&slice| slice == default);
        if ready || Instant::now() > deadline {
            return slices;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The time slices of a fresh child's threads, of the spare ready after
/// it, and of the child that spare becomes.
#[tractor::rpc]
async fn slices_of_two_spawns(default: u64) -> tractor::Result<(Vec<u64>, Vec<u64>, Vec<u64>)> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let first = run_slices(n, "first").await?;
        let spare = ready_slices(the_spares().await?[0], default).await;
        let second = run_slices(n, "second").await?;
        Ok((first, spare, second))
    })
    .await
}

/// Spares (and a fork server's forks) start in the background, with a long
/// time slice; no actor, and no spare once ready, keeps it.
#[tractor::test(enable_modules = [module_path!()])]
async fn actors_and_ready_spares_run_with_the_default_time_slice() -> tractor::Result<()> {
    let default = own_slice();
    tractor::open_nursery(async |n: &ActorNursery| {
        let middle = middle(n).await?;
        let (first, spare, second) = middle.run(slices_of_two_spawns::call(default)).await?;
        for (who, slices) in [
            ("a fresh child", first),
            ("a ready spare", spare),
            ("a spare's child", second),
        ] {
            assert!(!slices.is_empty(), "{who}: no thread seen");
            assert!(
                slices.iter().all(|&slice| slice == default),
                "{who}: thread slices {slices:?}, the default is {default}"
            );
        }
        n.cancel().await
    })
    .await
}

/// Two spawns, and the spares seen between them.
#[tractor::rpc]
async fn two_spawns() -> tractor::Result<(u32, Vec<u32>, u32)> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let first = run_pid(n, "first").await?;
        let spares = the_spares().await?;
        let second = run_pid(n, "second").await?;
        Ok((first, spares, second))
    })
    .await
}

#[tractor::test(enable_modules = [module_path!()])]
async fn the_next_spawn_becomes_a_waiting_spare() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let middle = middle(n).await?;
        let (first, spares, second) = middle.run(two_spawns::call()).await?;
        assert!(
            !spares.contains(&first),
            "a spare is a process of its own: {first} among {spares:?}"
        );
        assert!(
            spares.contains(&second),
            "the second child {second} is none of the spares {spares:?}"
        );
        n.cancel().await
    })
    .await
}

/// A spawn with another worker count than the spares' runtimes: its pid,
/// its thread count, and the spares' pids.
#[tractor::rpc]
async fn a_misfit_spawn() -> tractor::Result<(u32, usize, Vec<u32>)> {
    tractor::open_nursery(async |n: &ActorNursery| {
        run_pid(n, "first").await?;
        let spares = the_spares().await?;
        let wide = n
            .start_actor("wide")
            .enable_modules([module_path!()])
            .worker_threads(5)
            .await?;
        let wide_pid = wide.run(own_pid::call()).await?;
        let threads = wide.run(threads::call()).await?;
        n.cancel().await?;
        Ok((wide_pid, threads, spares))
    })
    .await
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_spawn_the_spare_does_not_fit_starts_afresh() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let middle = middle(n).await?;
        let (wide, threads, spares) = middle.run(a_misfit_spawn::call()).await?;
        assert!(
            !spares.contains(&wide),
            "a misfit spare {wide} was used (spares {spares:?})"
        );
        assert!(threads >= 6, "five workers and the main thread: {threads}");
        n.cancel().await
    })
    .await
}

#[tractor::rpc]
async fn spawn_once_and_report_spares() -> tractor::Result<Vec<u32>> {
    tractor::open_nursery(async |n: &ActorNursery| run_pid(n, "leaf").await).await?;
    the_spares().await
}

#[tractor::test(enable_modules = [module_path!()])]
async fn spares_go_with_their_actor() -> tractor::Result<()> {
    let spares = tractor::open_nursery(async |n: &ActorNursery| {
        let middle = middle(n).await?;
        let spares = middle.run(spawn_once_and_report_spares::call()).await?;
        for &spare in &spares {
            assert!(tractor_tests::is_alive(spare), "spare {spare} is not alive");
        }
        n.cancel().await?;
        Ok(spares)
    })
    .await?;
    for spare in spares {
        assert!(
            exits_within(spare, Duration::from_secs(5)).await,
            "spare {spare} of a cancelled actor outlived it"
        );
    }
    Ok(())
}

/// The file of a socket bound under `name`, as the kernel lists it.
fn bound_path(name: &str) -> Option<std::path::PathBuf> {
    let suffix = format!("/{name}");
    std::fs::read_to_string("/proc/net/unix")
        .ok()?
        .lines()
        .filter_map(|line| line.split_whitespace().nth(7))
        .find(|path| path.ends_with(&suffix))
        .map(std::path::PathBuf::from)
}

#[tractor::test(enable_modules = [module_path!()])]
async fn spares_bind_their_sockets_ahead_and_take_the_files_with_them() -> tractor::Result<()> {
    let (spares, files) = tractor::open_nursery(async |n: &ActorNursery| {
        let middle = middle(n).await?;
        let spares = middle.run(spawn_once_and_report_spares::call()).await?;
        let mut files = Vec::new();
        for &spare in &spares {
            // Bound before it knows which actor it will be, under a name
            // of its own (its pid).
            let name = format!("spare.{spare}.new");
            let deadline = Instant::now() + Duration::from_secs(10);
            let file = loop {
                match bound_path(&name) {
                    Some(file) => break file,
                    None if Instant::now() > deadline => {
                        return Err(tractor::Error::other(format!(
                            "spare {spare} bound no {name}"
                        )));
                    }
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            assert!(file.exists(), "{}", file.display());
            files.push(file);
        }
        n.cancel().await?;
        Ok((spares, files))
    })
    .await?;
    for spare in spares {
        assert!(
            exits_within(spare, Duration::from_secs(5)).await,
            "spare {spare} of a cancelled actor outlived it"
        );
    }
    for file in files {
        assert!(!file.exists(), "{} left behind", file.display());
    }
    Ok(())
}

/// The child's pid, and the length and byte sum of what it was given.
#[tractor::rpc]
async fn weigh(bytes: Vec<u8>) -> (u32, usize, u64) {
    let sum = bytes.iter().map(|&byte| u64::from(byte)).sum();
    (pid(), bytes.len(), sum)
}

#[tractor::rpc]
async fn nap(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// Larger than a Unix socket's buffer, so that the main call's write
/// over the link waits for the child to read it.
const LARGE: usize = 8 << 20;

fn large_argument() -> Vec<u8> {
    (0..LARGE).map(|i| (i % 251) as u8).collect()
}

/// The spares, then the pid of the child a spawn with a large main call
/// made of one, and what that child was given.
#[tractor::rpc]
async fn a_large_main_call_over_the_link() -> tractor::Result<(Vec<u32>, (u32, usize, u64))> {
    tractor::open_nursery(async |n: &ActorNursery| {
        run_pid(n, "first").await?;
        let spares = the_spares().await?;
        let weighed = n
            .run_in_actor("heavy", weigh::call(large_argument()))
            .enable_modules([module_path!()])
            .await?
            .result()
            .await?;
        Ok((spares, weighed))
    })
    .await
}

/// A spawn that takes the spare sends its main call over the link, with
/// the spec: the child runs it before its parent has said a word, and the
/// answer comes back whole, however large the call.
#[tractor::test(enable_modules = [module_path!()])]
async fn a_main_call_goes_over_the_link_whatever_its_size() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let middle = middle(n).await?;
        let (spares, (child, len, sum)) =
            middle.run(a_large_main_call_over_the_link::call()).await?;
        let expected: u64 = large_argument().iter().map(|&b| u64::from(b)).sum();
        assert!(
            spares.contains(&child),
            "the child {child} is none of the spares {spares:?}"
        );
        assert_eq!((len, sum), (LARGE, expected), "the argument arrived whole");
        n.cancel().await
    })
    .await
}

/// The spares; the pid of the child that took one with a main call of
/// 300 ms it overruns; whether its result, then its nursery, timed out.
#[tractor::rpc]
async fn a_timed_out_main_call_over_the_link() -> tractor::Result<(Vec<u32>, u32, bool, bool)> {
    let mut seen = None;
    let outcome = tractor::open_nursery(async |n: &ActorNursery| {
        run_pid(n, "first").await?;
        let spares = the_spares().await?;
        let napper = n
            .run_in_actor(
                "napper",
                nap::call(3_600_000).timeout(Duration::from_millis(300)),
            )
            .enable_modules([module_path!()])
            .await?;
        let child = napper.run(own_pid::call()).await?;
        let result = tokio::time::timeout(Duration::from_secs(10), napper.result()).await;
        let timed_out = matches!(result, Ok(Err(ref err)) if err.is_timeout());
        seen = Some((spares, child, timed_out));
        Ok(())
    })
    .await;
    let (spares, child, timed_out) =
        seen.ok_or_else(|| tractor::Error::other(format!("the body did not finish: {outcome:?}")))?;
    Ok((
        spares,
        child,
        timed_out,
        outcome.is_err_and(|err| err.is_timeout()),
    ))
}

/// A main call sent with the spec keeps its timeout: the child stops it,
/// and the nursery fails with the timeout.
#[tractor::test(enable_modules = [module_path!()])]
async fn a_main_call_over_the_link_keeps_its_timeout() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let middle = middle(n).await?;
        let (spares, child, result_timed_out, nursery_timed_out) = middle
            .run(a_timed_out_main_call_over_the_link::call())
            .await?;
        assert!(
            spares.contains(&child),
            "the napper {child} is none of the spares {spares:?}"
        );
        assert!(result_timed_out, "the napper's result did not time out");
        assert!(
            nursery_timed_out,
            "its nursery did not fail with the timeout"
        );
        n.cancel().await
    })
    .await
}
