#[tractor::rpc(timeout = 5)]
async fn ping() {}

fn main() {}
