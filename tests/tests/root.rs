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
async fn an_idle_child_holds_at_most_four_threads() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let idle = n
            .start_actor("idle")
            .enable_modules([module_path!()])
            .await?;
        let default = threads_of(idle.run(pid::call()).await?);
        println!(
            "an idle child holds {default} threads (this host has {} cores)",
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        assert!(default <= 4, "an idle child holds {default} threads");

        let lean = n
            .start_actor("lean")
            .enable_modules([module_path!()])
            .worker_threads(1)
            .await?;
        let lean_threads = threads_of(lean.run(pid::call()).await?);
        assert_eq!(lean_threads, default - 1, "one worker fewer");
        // Its own children get the tree's default again, not its setting.
        assert_eq!(lean.run(grandchild_threads::call()).await?, default);
        n.cancel().await
    })
    .await
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
