//! Discovery: the registrar, find/wait, names that repeat, actors that
//! die, and a second program joining the tree of a first.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tractor::{ActorNursery, Error, Portal};
use tractor_tests::{Program, exits_within, kill, private_registrar};

#[tractor::rpc]
async fn hi() -> String {
    format!("Hi my name is {}", tractor::current_actor().name())
}

#[tractor::rpc]
async fn say_hello(other: String) -> tractor::Result<String> {
    tractor::wait_for_actor(&other).await?.run(hi::call()).await
}

#[tractor::rpc]
async fn pid() -> u32 {
    std::process::id()
}

/// Spawns a daemon and reports its pid, then serves forever.
#[tractor::rpc]
async fn host(name: String) -> tractor::Result<u32> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let hosted = daemon(n, &name).await?;
        let root = tractor::get_registrar().await?;
        root.run(hosted_pid::call(hosted.run(pid::call()).await?))
            .await?;
        std::future::pending().await
    })
    .await
}

static HOSTED: std::sync::LazyLock<tokio::sync::watch::Sender<Option<u32>>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(None));

/// Runs in the test's root: records the pid a `host` reports.
#[tractor::rpc]
async fn hosted_pid(pid: u32) {
    HOSTED.send_replace(Some(pid));
}

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name).enable_modules([module_path!()]).await
}

#[tractor::test]
async fn finding_an_absent_actor_is_none() -> tractor::Result<()> {
    assert!(tractor::find_actor("nobody").await?.is_none());
    Ok(())
}

#[tractor::test]
async fn the_root_is_the_registrar_and_is_registered() -> tractor::Result<()> {
    let registrar = tractor::get_registrar().await?;
    let me = tractor::current_actor();
    assert_eq!(registrar.uid(), me.uid());
    let found = tractor::find_actor("root")
        .await?
        .expect("the root is registered");
    assert_eq!(found.uid(), me.uid());
    Ok(())
}

#[tractor::test]
async fn found_actors_answer_and_vanish_once_cancelled() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let spawned = daemon(n, "findme").await?;
        let found = tractor::find_actor("findme")
            .await?
            .expect("registered when spawned");
        assert_eq!(found.uid(), spawned.uid());
        assert_eq!(found.addr(), spawned.addr());
        assert_eq!(found.run(hi::call()).await?, "Hi my name is findme");
        assert!(spawned.cancel_actor().await?);
        assert!(
            tractor::find_actor("findme").await?.is_none(),
            "unregistered on exit"
        );
        Ok(())
    })
    .await
}

#[tractor::test]
async fn siblings_find_each_other_by_name() -> tractor::Result<()> {
    let (from_gretchen, from_donny) = tractor::open_nursery(async |n: &ActorNursery| {
        let donny = n
            .run_in_actor("donny", say_hello::call("gretchen".into()))
            .await?;
        let gretchen = n
            .run_in_actor("gretchen", say_hello::call("donny".into()))
            .await?;
        Ok((gretchen.result().await?, donny.result().await?))
    })
    .await?;
    assert_eq!(from_gretchen, "Hi my name is donny");
    assert_eq!(from_donny, "Hi my name is gretchen");
    Ok(())
}

#[tractor::test]
async fn wait_for_actor_returns_once_the_name_registers() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let waiting = tokio::spawn(async { tractor::wait_for_actor("latecomer").await });
        assert!(tractor::find_actor("latecomer").await?.is_none());
        let latecomer = daemon(n, "latecomer").await?;
        let found = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ended once the name registered")
            .map_err(Error::other)??;
        assert_eq!(found.uid(), latecomer.uid());
        latecomer.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn repeated_names_resolve_to_the_latest_live_actor() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let first = daemon(n, "twin").await?;
        let second = daemon(n, "twin").await?;
        assert_ne!(first.uid(), second.uid());
        let found = tractor::find_actor("twin").await?.unwrap();
        assert_eq!(found.uid(), second.uid());
        second.cancel_actor().await?;
        let found = tractor::find_actor("twin").await?.unwrap();
        assert_eq!(found.uid(), first.uid());
        first.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test(enable_modules = [module_path!()])]
async fn a_killed_actor_is_not_found_once_it_has_exited() {
    let mut hosted = HOSTED.subscribe();
    let err = tractor::open_nursery(async |n: &ActorNursery| -> tractor::Result<()> {
        // The victim is a grandchild: the registrar learns of its death
        // only from its registration channel.
        n.run_in_actor("host", host::call("victim".into())).await?;
        let victim = *hosted
            .wait_for(Option::is_some)
            .await
            .map_err(Error::other)?;
        assert!(tractor::find_actor("victim").await?.is_some());
        kill(victim.unwrap());
        // Whether or not the registrar has noticed yet, a lookup never
        // answers an actor that cannot be reached.
        assert!(exits_within(victim.unwrap(), Duration::from_secs(2)).await);
        assert!(tractor::find_actor("victim").await?.is_none());
        Err(Error::other("victim gone"))
    })
    .await
    .unwrap_err();
    // The host's nursery also saw its child die; either way we get out.
    assert!(err.to_string().contains("victim"), "{err:?}");
}

fn program(role: &str, registrar: &str, secret: &str) -> Program {
    Program::start(
        env!("CARGO_BIN_EXE_standalone"),
        role,
        &[
            ("TRACTOR_REGISTRAR", registrar),
            (tractor::SECRET_ENV, secret),
        ],
    )
}

#[tokio::test]
async fn a_second_program_joins_the_tree_of_the_first() {
    let registrar = private_registrar();
    let secret = "shared by the two programs of this test";
    let mut a_pids = HashMap::new();
    let mut a = program("a", &registrar, secret);
    a.expect("ready", &mut a_pids).await;

    // A program with another secret is refused before it can do anything,
    // and the tree carries on.
    let stranger = program("b", &registrar, "not the secret of this tree");
    let (status, complaint) = stranger.finish().await;
    assert_eq!(status.code(), Some(1));
    assert!(complaint.contains("another secret"), "{complaint}");

    let mut b = program("b", &registrar, secret);
    let called = b.expect("B called: ", &mut HashMap::new()).await;
    assert!(called.contains("service_a in program a"), "{called}");
    let late = b.expect("B found late: ", &mut HashMap::new()).await;
    assert!(late.contains("late_service in program a"), "{late}");
    let from_a = a.expect("A called: ", &mut a_pids).await;
    assert!(from_a.contains("client_b in program b"), "{from_a}");
    a.expect("pid late_service", &mut a_pids).await;

    // The registrar goes away: B's own actors keep serving, lookups fail
    // with an error instead of hanging.
    kill(a.child.id().unwrap());
    a.child.wait().await.unwrap();
    for (name, pid) in &a_pids {
        assert!(
            exits_within(*pid, Duration::from_secs(2)).await,
            "{name} outlived A"
        );
    }
    b.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"go on\n")
        .await
        .unwrap();
    let still = b
        .expect("B still talks to client_b: ", &mut HashMap::new())
        .await;
    assert!(still.contains("client_b in program b"), "{still}");
    let lookup = b.expect("B lookup", &mut HashMap::new()).await;
    assert!(lookup.starts_with("B lookup failed: "), "{lookup}");
    assert!(lookup.contains("unreachable"), "{lookup}");
    let status = tokio::time::timeout(Duration::from_secs(10), b.child.wait())
        .await
        .expect("B exits")
        .unwrap();
    assert!(status.success(), "{status}");
}
