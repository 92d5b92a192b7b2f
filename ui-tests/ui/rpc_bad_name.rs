#[tractor::rpc(name = "no path")]
async fn ping() {}

#[tractor::rpc(name = 5)]
async fn pong() {}

#[tractor::stream(name = "::edge")]
fn ticks() -> impl futures::Stream<Item = u64> {
    futures::stream::empty()
}

fn main() {}
