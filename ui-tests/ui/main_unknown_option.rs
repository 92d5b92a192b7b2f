#[tractor::main(registry = "127.0.0.1:1616", loglevel = 3)]
async fn main() {}
