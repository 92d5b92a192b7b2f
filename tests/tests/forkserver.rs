//! The fork server under a test harness: it forks only as the single
//! thread of its process, and children of an ignored test run when the
//! test is run with `--ignored`.

use std::process::Command;

use tractor::{ActorNursery, StartMethod};

#[tractor::rpc]
async fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

#[tractor::rpc]
async fn answer() -> u32 {
    42
}

#[tractor::test]
async fn the_fork_server_is_single_threaded_under_libtest() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let forked = n
            .start_actor("forked")
            .enable_modules([module_path!()])
            .start_method(StartMethod::ForkServer)
            .await?;
        let server = forked.run(parent_pid::call()).await?;
        assert_ne!(server, std::process::id(), "the fork server is the parent");
        let threads = std::fs::read_dir(format!("/proc/{server}/task"))?.count();
        assert_eq!(threads, 1, "the fork server runs {threads} threads");
        // And this test binary (libtest) runs several.
        assert!(std::fs::read_dir("/proc/self/task")?.count() > 1);
        n.cancel().await
    })
    .await
}

#[tractor::test]
#[ignore = "run by runs_an_ignored_test_whose_children_run, with --ignored"]
async fn an_ignored_test_spawns_children() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let child = n.run_in_actor("answerer", answer::call()).await?;
        assert_eq!(child.result().await?, 42);
        Ok(())
    })
    .await
}

#[test]
fn runs_an_ignored_test_whose_children_run() {
    for method in ["exec", "forkserver"] {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "an_ignored_test_spawns_children"])
            .env(tractor::START_METHOD_ENV, method)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{method}: {output:?}");
        assert!(stdout.contains("1 passed"), "{method}: {stdout}");
    }
}
