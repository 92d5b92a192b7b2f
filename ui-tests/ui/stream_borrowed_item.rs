#[tractor::stream]
fn words() -> impl futures_core::Stream<Item = &'static str> {
    futures::stream::iter(["a", "b"])
}

fn main() {}
