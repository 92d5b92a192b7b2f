#[tractor::rpc]
fn numbers() -> impl futures_core::Stream<Item = u32> {
    futures::stream::iter(0..3)
}

fn main() {}
