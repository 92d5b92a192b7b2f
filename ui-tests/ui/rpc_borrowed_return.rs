#[tractor::rpc]
fn name() -> &'static str {
    "donny"
}

fn main() {}
