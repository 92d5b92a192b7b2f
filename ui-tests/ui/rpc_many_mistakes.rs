// All the mistakes in one signature are reported together.
#[tractor::rpc]
async fn everything<'a>(_name: &'a str, (_x, _y): (u8, u8), _items: &[u32]) {}

fn main() {}
