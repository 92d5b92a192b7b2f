#[tractor::stream]
async fn numbers(n: u32) -> Vec<u32> {
    (0..n).collect()
}

fn main() {}
