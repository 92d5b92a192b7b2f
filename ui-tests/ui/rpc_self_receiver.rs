struct Counter(u64);

impl Counter {
    #[tractor::rpc]
    async fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
