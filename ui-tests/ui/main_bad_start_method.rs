#[tractor::main(start_method = "spawn")]
async fn main() {}
