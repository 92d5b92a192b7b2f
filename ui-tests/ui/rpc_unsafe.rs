#[tractor::rpc]
async unsafe fn dangerous() -> u32 {
    1
}

fn main() {}
