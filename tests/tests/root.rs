//! The root and its children's runtimes: how many threads an actor holds,
//! and what the spawn and root options change.

use tractor::ActorNursery;

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

/// Threads of process `pid`.
fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the actor is alive")
        .count()
}

/// Spawns a child with the tree's defaults and reports its thread count.
#[tractor::rpc]
async fn grandchild_threads() -> tractor::Result<usize> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let child = n
            .start_actor("grandchild")
            .enable_modules([module_path!()])
            .await?;
        let threads = threads_of(child.run(pid::call()).await?);
        child.cancel_actor().await?;
        Ok(threads)
    })
    .await
}

#[tractor::test]
async fn a_child_runs_on_its_main_thread_unless_its_spawn_asks_for_workers() -> tractor::Result<()>
{
    tractor::open_nursery(async |n: &ActorNursery| {
        let idle = n
            .start_actor("idle")
            .enable_modules([module_path!()])
            .await?;
        let default = threads_of(idle.run(pid::call()).await?);
        // Under libtest the actor runs on the test's thread, next to the
        // harness's main thread; a program's child has the one thread.
        assert!(default <= 2, "an idle child holds {default} threads");

        let one = n
            .start_actor("one")
            .enable_modules([module_path!()])
            .worker_threads(1)
            .await?;
        assert_eq!(
            threads_of(one.run(pid::call()).await?),
            default,
            "one worker is the thread the actor starts on"
        );

        let wide = n
            .start_actor("wide")
            .enable_modules([module_path!()])
            .worker_threads(3)
            .await?;
        assert_eq!(
            threads_of(wide.run(pid::call()).await?),
            default + 3,
            "three workers besides that thread"
        );
        // Its own children get the tree's default again, not its setting.
        assert_eq!(wide.run(grandchild_threads::call()).await?, default);
        n.cancel().await
    })
    .await
}

/// Like a child, the root runs on the one thread it starts on (its body
/// included) unless told otherwise. (Assumes `TRACTOR_WORKER_THREADS` is
/// unset, as it is in this suite outside the test that sets it for a run
/// of its own.)
#[tractor::test]
async fn the_root_runs_on_the_thread_it_starts_on_by_default() {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread,
        "the root's runtime"
    );
    assert_eq!(
        std::thread::current().name(),
        Some("the_root_runs_on_the_thread_it_starts_on_by_default"),
        "the body runs on the test's own thread"
    );
}

#[tractor::test(worker_threads = 3, enable_modules = [module_path!()])]
async fn the_roots_worker_threads_apply_to_the_whole_tree() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let child = n
            .start_actor("child")
            .enable_modules([module_path!()])
            .await?;
        let child_threads = threads_of(child.run(pid::call()).await?);
        let two = n
            .start_actor("two")
            .enable_modules([module_path!()])
            .worker_threads(2)
            .await?;
        let two_threads = threads_of(two.run(pid::call()).await?);
        assert_eq!(
            child_threads,
            two_threads + 1,
            "a child of this tree gets 3 workers"
        );
        let grandchild = child.run(grandchild_threads::call()).await?;
        assert_eq!(child_threads, grandchild, "and so does every descendant");
        n.cancel().await
    })
    .await
}

/// Run by `the_worker_threads_come_from_the_environment` with
/// `TRACTOR_WORKER_THREADS` set.
#[tractor::test(enable_modules = [module_path!()])]
#[ignore = "run by the_worker_threads_come_from_the_environment"]
async fn a_tree_sized_by_the_environment() -> tractor::Result<()> {
    let threads: usize = std::env::var("TRACTOR_WORKER_THREADS")
        .expect("set by the test that runs this one")
        .parse()
        .expect("a number");
    // One worker is the thread the root starts on: the test's own.
    let here = std::thread::current().name().map(str::to_owned);
    assert_eq!(
        here.as_deref() == Some("a_tree_sized_by_the_environment"),
        threads == 1,
        "with {threads} workers the body runs on {here:?}"
    );
    tractor::open_nursery(async |n: &ActorNursery| {
        let default = n
            .start_actor("default")
            .enable_modules([module_path!()])
            .await?;
        let asked = n
            .start_actor("asked")
            .enable_modules([module_path!()])
            .worker_threads(threads)
            .await?;
        assert_eq!(
            threads_of(default.run(pid::call()).await?),
            threads_of(asked.run(pid::call()).await?),
            "a child gets the tree's {threads} workers"
        );
        n.cancel().await
    })
    .await
}

#[test]
fn the_worker_threads_come_from_the_environment() {
    let run = |threads: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "a_tree_sized_by_the_environment"])
            .env("TRACTOR_WORKER_THREADS", threads)
            .output()
            .unwrap()
    };
    for threads in ["1", "3"] {
        let output = run(threads);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{threads}: {output:?}");
        assert!(stdout.contains("1 passed"), "{threads}: {stdout}");
    }
    let refused = run("none");
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        stdout.contains("TRACTOR_WORKER_THREADS=\"none\" is not a number of threads"),
        "{stdout}"
    );
}
