// A wire name given in the attribute.
#[tractor::rpc(name = "billing::v2::charge")]
async fn charge(cents: u64) -> u64 {
    cents
}

#[tractor::stream(name = "billing::ticks")]
fn ticks() -> impl futures::Stream<Item = u64> {
    futures::stream::empty()
}

fn main() {
    assert_eq!(charge::NAME, "billing::v2::charge");
    assert_eq!(ticks::NAME, "billing::ticks");
    let _ = charge::call(5);
}
