#[tractor::main]
async fn main(verbose: bool) {}
