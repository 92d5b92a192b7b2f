use tractor::Context;

#[tractor::context]
async fn numbers(ctx: Context<(), (), ()>) -> impl futures_core::Stream<Item = u32> {
    let _ = ctx;
    futures::stream::iter(0..3)
}

fn main() {}
