#[derive(Debug)]
struct Opaque;

#[tractor::rpc]
async fn fails() -> Result<u32, Opaque> {
    Err(Opaque)
}

fn main() {}
