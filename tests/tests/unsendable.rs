//! Messages that cannot be sent, in all three directions: an argument, an
//! answer and a stream item, each once too large for a frame and once not
//! encodable. Whoever waits gets an error naming the function and the
//! reason, never a hang, and the actor keeps serving.

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize, Serializer};
use tractor::{ActorNursery, Error, Portal};

/// Larger than the 64 MiB frame limit.
const TOO_LARGE: usize = 80 << 20;

/// A value whose encoding always fails (postcard reports such failures
/// as a "Serde Serialization Error", without the message).
#[derive(Debug, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to travel"))
    }
}

#[tractor::rpc]
async fn length(text: String) -> usize {
    text.len()
}

#[tractor::rpc]
async fn accept_unencodable(_value: Unencodable) {}

#[tractor::rpc]
async fn huge_answer() -> String {
    "x".repeat(TOO_LARGE)
}

#[tractor::rpc]
async fn unencodable_answer() -> Unencodable {
    Unencodable
}

#[tractor::stream]
fn huge_item() -> impl Stream<Item = String> {
    futures::stream::once(async { "x".repeat(TOO_LARGE) })
}

#[tractor::stream]
fn unencodable_item() -> impl Stream<Item = Unencodable> {
    futures::stream::once(async { Unencodable })
}

async fn daemon(n: &ActorNursery) -> tractor::Result<Portal> {
    n.start_actor("courier")
        .enable_modules([module_path!()])
        .await
}

/// The daemon still answers after the failure.
async fn still_serving(portal: &Portal) -> tractor::Result<()> {
    assert_eq!(portal.run(length::call("four".into())).await?, 4);
    Ok(())
}

fn assert_names(err: &Error, function: &str, reason: &str) {
    let text = err.to_string();
    assert!(
        text.contains(function),
        "the error names `{function}`: {text}"
    );
    assert!(
        text.contains(reason),
        "the error says why ({reason}): {text}"
    );
}

#[tractor::test]
async fn an_argument_that_cannot_be_sent_fails_the_call() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let courier = daemon(n).await?;
        let err = courier
            .run(length::call("x".repeat(TOO_LARGE)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Codec { .. }), "{err:?}");
        assert_names(&err, length::NAME, "frame limit");
        let err = courier
            .run(accept_unencodable::call(Unencodable))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Codec { .. }), "{err:?}");
        assert_names(&err, accept_unencodable::NAME, "Serialization Error");
        still_serving(&courier).await?;
        courier.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn an_answer_that_cannot_be_sent_comes_back_as_an_error() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let courier = daemon(n).await?;
        let err = courier.run(huge_answer::call()).await.unwrap_err();
        let remote = &err.remote_errors()[0];
        assert_eq!(remote.type_name(), "tractor::Error::Codec", "{err:?}");
        assert_eq!(remote.actor().name(), "courier");
        assert_names(&err, huge_answer::NAME, "frame limit");
        let err = courier.run(unencodable_answer::call()).await.unwrap_err();
        assert_eq!(
            err.remote_errors()[0].type_name(),
            "tractor::Error::Codec",
            "{err:?}"
        );
        assert_names(&err, unencodable_answer::NAME, "Serialization Error");
        still_serving(&courier).await?;
        courier.cancel_actor().await?;
        Ok(())
    })
    .await
}

#[tractor::test]
async fn a_stream_item_that_cannot_be_sent_ends_the_stream_with_an_error() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        let courier = daemon(n).await?;
        let items: Vec<_> = courier
            .open_stream(huge_item::call())
            .await?
            .collect()
            .await;
        assert_eq!(items.len(), 1, "one error, no item");
        let err = items[0].as_ref().unwrap_err();
        assert_names(err, huge_item::NAME, "frame limit");
        let items: Vec<_> = courier
            .open_stream(unencodable_item::call())
            .await?
            .collect()
            .await;
        assert_eq!(items.len(), 1, "one error, no item");
        assert_names(
            items[0].as_ref().unwrap_err(),
            unencodable_item::NAME,
            "Serialization Error",
        );
        still_serving(&courier).await?;
        courier.cancel_actor().await?;
        Ok(())
    })
    .await
}
