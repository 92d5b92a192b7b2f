#[tractor::rpc]
extern "C" fn foreign() -> u32 {
    1
}

fn main() {}
