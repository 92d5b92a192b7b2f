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
