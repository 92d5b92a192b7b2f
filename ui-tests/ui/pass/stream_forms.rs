//! Signatures #[tractor::stream] accepts, and the stubs they get.

use futures::Stream;
use tractor::StreamContext;

#[tractor::stream]
fn plain(n: u32) -> impl Stream<Item = u32> {
    futures::stream::iter(0..n)
}

#[tractor::stream]
async fn awaited(prefix: String) -> impl Stream<Item = String> + Send {
    futures::stream::iter(vec![format!("{prefix}1")])
}

#[tractor::stream]
async fn pushed(ctx: StreamContext<u64>) {
    let _ = ctx.send_yield(1).await;
}

#[tractor::stream]
async fn pushed_fallible(mut ctx: StreamContext<Vec<u8>>, size: usize) -> tractor::Result<()> {
    ctx = ctx.clone();
    ctx.send_yield(vec![0; size]).await
}

fn main() {
    let _: tractor::StreamCall<u32> = plain::call(3);
    let _: tractor::StreamCall<String> = awaited::call("x".into());
    let _: tractor::StreamCall<u64> = pushed::call();
    let _: tractor::StreamCall<Vec<u8>> = pushed_fallible::call(10).window(4);
    assert_eq!(pushed::NAME, concat!(module_path!(), "::pushed"));
}
