//! The public API's futures are `Send` (so they run on multi-thread
//! runtimes and inside remote functions); checked at compile time.

use tractor::{ActorNursery, Portal, RunPortal};

#[tractor::rpc]
async fn noop() -> u32 {
    0
}

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

#[allow(dead_code, clippy::let_underscore_future)]
fn portal_futures_are_send(portal: &Portal, run: &RunPortal<u32>, n: &ActorNursery) {
    assert_send(&portal.run(noop::call()));
    assert_send(&portal.cancel_actor());
    assert_send(&run.result());
    assert_send(&std::future::IntoFuture::into_future(n.start_actor("a")));
    assert_send(&std::future::IntoFuture::into_future(
        n.run_in_actor("b", noop::call()),
    ));
    assert_send(&n.cancel());
}

#[test]
fn free_functions_return_send_futures() {
    assert_send(&tractor::open_nursery(async |n: &ActorNursery| {
        let portal = n.start_actor("x").await?;
        portal.run(noop::call()).await
    }));
    assert_send(&tractor::find_actor("x"));
    assert_send(&tractor::wait_for_actor("x"));
    assert_send(&tractor::get_registrar());
}

#[test]
fn handles_are_send_sync_clone() {
    assert_send_sync_clone::<Portal>();
    assert_send_sync_clone::<tractor::Actor>();
    assert_send_sync_clone::<tractor::ActorUid>();
    assert_send_sync_clone::<tractor::Error>();
    assert_send_sync_clone::<tractor::RemoteActorError>();
    fn run_portal_is_send_sync<T: Send + Sync>() {}
    run_portal_is_send_sync::<RunPortal<String>>();
    fn error_is_std_error<E: std::error::Error + Send + Sync + 'static>() {}
    error_is_std_error::<tractor::Error>();
}
