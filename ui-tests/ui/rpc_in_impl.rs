struct Service;

impl Service {
    #[tractor::rpc]
    async fn associated() -> u32 {
        1
    }
}

fn main() {}
