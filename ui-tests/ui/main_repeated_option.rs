#[tractor::main(loglevel = "info", loglevel = "debug")]
async fn main() {}
