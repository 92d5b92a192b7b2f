//! Remote calls: stubs, results, errors, panics, dispatch rules, actor
//! state; every call crosses a real process boundary.

use std::collections::HashSet;

use tractor::{ActorNursery, Call, Error, Portal};

#[tractor::rpc]
async fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[tractor::rpc]
fn add_blocking(a: u64, b: u64) -> u64 {
    a + b
}

#[tractor::rpc]
async fn whoami() -> (String, bool, bool, u32) {
    let me = tractor::current_actor();
    (
        me.name().to_string(),
        me.is_root(),
        me.is_registrar(),
        std::process::id(),
    )
}

#[tractor::rpc]
fn whoami_blocking() -> String {
    tractor::current_actor().name().to_string()
}

#[derive(Debug)]
struct Overdrawn {
    missing: u64,
}

impl std::fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "overdrawn by {}", self.missing)
    }
}

impl std::error::Error for Overdrawn {}

#[tractor::rpc]
async fn withdraw(balance: u64, amount: u64) -> Result<u64, Overdrawn> {
    balance.checked_sub(amount).ok_or_else(|| Overdrawn {
        missing: amount - balance,
    })
}

#[tractor::rpc]
fn parse_number(text: String) -> Result<u64, std::num::ParseIntError> {
    text.parse()
}

#[tractor::rpc]
async fn explode(message: String) -> u32 {
    panic!("{message}");
}

#[tractor::rpc]
async fn statespace_doggy() -> (Option<u32>, Option<Vec<String>>, Option<u32>) {
    let me = tractor::current_actor();
    (
        me.statespace::<u32>("doggy"),
        me.statespace::<Vec<String>>("names"),
        me.statespace::<u32>("missing"),
    )
}

mod hidden {
    /// Lives in a module nobody enables.
    #[tractor::rpc]
    pub async fn secret() -> u32 {
        42
    }
}

/// Relays, with `?`, whatever its own child's call fails with.
#[tractor::rpc]
async fn relay_withdraw(amount: u64) -> tractor::Result<u64> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let banker = n.run_in_actor("banker", withdraw::call(10, amount)).await?;
        let left = banker.result().await?;
        Ok(left)
    })
    .await
}

async fn daemon(n: &ActorNursery, name: &str) -> tractor::Result<Portal> {
    n.start_actor(name).enable_modules([module_path!()]).await
}

#[tractor::test]
async fn run_in_actor_returns_the_value() -> tractor::Result<()> {
    let sum = tractor::open_nursery(async |n: &ActorNursery| {
        let adder = n.run_in_actor("adder", add::call(2, 3)).await?;
        adder.result().await
    })
    .await?;
    assert_eq!(sum, 5);
    Ok(())
}

#[tractor::test]
async fn plain_fns_run_on_blocking_threads_of_the_actor() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let worker = daemon(n, "blocker").await?;
        assert_eq!(worker.run(add_blocking::call(40, 2)).await?, 42);
        assert_eq!(worker.run(whoami_blocking::call()).await?, "blocker");
        worker.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn current_actor_describes_the_child() -> tractor::Result<()> {
    let root = tractor::current_actor();
    assert!(root.is_root());
    assert!(root.is_registrar());
    let (name, is_root, is_registrar, pid) = tractor::open_nursery(async |n: &ActorNursery| {
        let worker = n.run_in_actor("introspect", whoami::call()).await?;
        assert_eq!(worker.uid().name(), "introspect");
        worker.result().await
    })
    .await?;
    assert_eq!(name, "introspect");
    assert!(!is_root);
    assert!(!is_registrar);
    assert_ne!(
        pid,
        std::process::id(),
        "the function ran in another process"
    );
    Ok(())
}

#[tractor::test]
async fn remote_err_arrives_with_type_message_and_actor() {
    let outcome = tractor::open_nursery(async |n: &ActorNursery| {
        let banker = daemon(n, "banker").await?;
        let err = banker.run(withdraw::call(3, 10)).await.unwrap_err();
        let Error::Remote(remote) = &err else {
            panic!("expected a remote error, got {err:?}");
        };
        assert!(
            remote.type_name().ends_with("rpc::Overdrawn"),
            "{}",
            remote.type_name()
        );
        assert_eq!(remote.message(), "overdrawn by 7");
        assert_eq!(remote.actor().name(), "banker");
        assert_eq!(remote.actor(), banker.uid());
        assert!(err.to_string().contains("banker"), "{err}");
        assert!(err.to_string().contains("overdrawn by 7"), "{err}");

        let err = banker
            .run(parse_number::call("x".into()))
            .await
            .unwrap_err();
        let remote = &err.remote_errors()[0];
        assert_eq!(remote.type_name(), "core::num::error::ParseIntError");
        assert_eq!(remote.message(), "invalid digit found in string");

        // A failed call does not hurt the actor.
        assert_eq!(banker.run(withdraw::call(10, 3)).await?, 7);
        banker.cancel_actor().await?;
        Ok(())
    })
    .await;
    outcome.unwrap();
}

#[tractor::test]
async fn remote_panic_arrives_as_panic() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let bomb = daemon(n, "bomb").await?;
        let err = bomb.run(explode::call("kaboom".into())).await.unwrap_err();
        let remote = &err.remote_errors()[0];
        assert_eq!(remote.type_name(), "panic");
        assert_eq!(remote.message(), "kaboom");
        assert_eq!(remote.actor().name(), "bomb");
        // Where `explode` panics.
        let at = format!("{}:61:5", file!());
        assert_eq!(remote.location(), Some(at.as_str()), "{err:?}");
        assert!(remote.traceback().contains(&at), "{}", remote.traceback());
        assert!(format!("{err:?}").contains("kaboom"));
        // The actor survived its function's panic.
        assert_eq!(bomb.run(add::call(1, 1)).await?, 2);
        bomb.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn relayed_error_keeps_type_message_and_source() {
    let err = tractor::open_nursery(async |n: &ActorNursery| {
        let middle = n.run_in_actor("middle", relay_withdraw::call(25)).await?;
        middle.result().await
    })
    .await
    .unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("expected the relayed remote error itself, got {err:?}");
    };
    assert!(
        remote.type_name().ends_with("rpc::Overdrawn"),
        "{}",
        remote.type_name()
    );
    assert_eq!(remote.message(), "overdrawn by 15");
    assert_eq!(remote.actor().name(), "banker");
    let relays: Vec<_> = remote.relays().iter().map(|uid| uid.name()).collect();
    assert_eq!(relays, ["middle"]);
    assert!(
        remote.traceback().contains("raised in actor banker["),
        "{}",
        remote.traceback()
    );
    assert!(
        remote.traceback().contains("relayed by actor middle["),
        "{}",
        remote.traceback()
    );
}

#[tractor::test]
async fn functions_of_disabled_modules_are_not_exposed() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let worker = daemon(n, "guarded").await?;
        let err = worker.run(hidden::secret::call()).await.unwrap_err();
        let remote = &err.remote_errors()[0];
        assert_eq!(remote.type_name(), "ModuleNotExposed");
        assert!(
            remote.message().contains("rpc::hidden"),
            "{}",
            remote.message()
        );

        let unknown: Call<u32> = Call::by_name("nowhere::nothing", &());
        let err = worker.run(unknown).await.unwrap_err();
        assert_eq!(err.remote_errors()[0].type_name(), "NoSuchFunction");

        // Postcard is not self-describing: too few bytes is what fails.
        let mistyped: Call<u64> = Call::by_name(add::NAME, &(1u8,));
        let err = worker.run(mistyped).await.unwrap_err();
        assert_eq!(err.remote_errors()[0].type_name(), "InvalidArguments");

        // Still serving.
        assert_eq!(worker.run(add::call(20, 22)).await?, 42);
        worker.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn statespace_reaches_the_child() -> tractor::Result<()> {
    let state = tractor::open_nursery(async |n: &ActorNursery| {
        let checker = n
            .run_in_actor("checker", statespace_doggy::call())
            .statespace("doggy", 10u32)
            .statespace("names", vec!["a".to_string(), "b".to_string()])
            .await?;
        checker.result().await
    })
    .await?;
    assert_eq!(state, (Some(10), Some(vec!["a".into(), "b".into()]), None));
    Ok(())
}

#[tractor::test]
async fn concurrent_calls_share_one_portal() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let worker = daemon(n, "busy").await?;
        let calls = (0..200u64).map(|i| {
            let worker = worker.clone();
            async move { worker.run(add::call(i, 1)).await }
        });
        let sums = futures::future::try_join_all(calls).await?;
        assert_eq!(sums, (1..=200).collect::<Vec<_>>());
        worker.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn a_thousand_sequential_calls() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let worker = daemon(n, "steady").await?;
        let mut total = 0;
        for i in 0..1000 {
            total = worker.run(add::call(total, i)).await?;
        }
        assert_eq!(total, (0..1000).sum::<u64>());
        worker.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn ten_concurrent_children() -> tractor::Result<()> {
    let pids = tractor::open_nursery(async |n: &ActorNursery| {
        let spawns = (0..10).map(|i| n.run_in_actor(format!("child_{i}"), whoami::call()));
        let portals =
            futures::future::try_join_all(spawns.map(std::future::IntoFuture::into_future)).await?;
        let mut pids = HashSet::new();
        for (i, portal) in portals.iter().enumerate() {
            let (name, _, _, pid) = portal.result().await?;
            assert_eq!(name, format!("child_{i}"));
            pids.insert(pid);
        }
        Ok(pids)
    })
    .await?;
    assert_eq!(pids.len(), 10, "ten distinct processes");
    for pid in pids {
        assert!(
            !tractor_tests::is_alive(pid),
            "child {pid} outlived its nursery"
        );
    }
    Ok(())
}

#[tractor::test]
async fn result_is_taken_once() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let adder = n.run_in_actor("once", add::call(1, 2)).await?;
        assert_eq!(adder.result().await?, 3);
        assert!(matches!(
            adder.result().await,
            Err(Error::ResultTaken { .. })
        ));
        Ok(())
    })
    .await
}

#[tractor::rpc]
async fn add_later(a: u64, b: u64, after_ms: u64) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(after_ms)).await;
    a + b
}

#[tractor::test]
async fn a_result_wait_that_times_out_leaves_the_value() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let adder = n
            .run_in_actor("patient", add_later::call(1, 2, 300))
            .await?;
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), adder.result()).await;
        assert!(early.is_err(), "the answer is not there after 20 ms");
        assert_eq!(adder.result().await?, 3, "the next result() gets the value");
        assert!(matches!(
            adder.result().await,
            Err(Error::ResultTaken { .. })
        ));
        Ok(())
    })
    .await
}

/// A raw identifier: its stub and its table entry agree on the name.
#[tractor::rpc]
async fn r#match(x: u32) -> u32 {
    x + 1
}

#[tractor::test]
async fn raw_identifiers_and_types_declared_in_a_block_work() -> tractor::Result<()> {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Local {
        n: u32,
    }

    #[tractor::rpc]
    async fn double_local(local: Local) -> Local {
        Local { n: local.n * 2 }
    }

    assert_eq!(r#match::NAME, concat!(module_path!(), "::match"));
    tractor::open_nursery(async |n: &ActorNursery| {
        let worker = daemon(n, "blocky").await?;
        assert_eq!(worker.run(r#match::call(1)).await?, 2);
        assert_eq!(
            worker.run(double_local::call(Local { n: 2 })).await?,
            Local { n: 4 }
        );
        worker.cancel_actor().await?;
        Ok(())
    })
    .await
}
