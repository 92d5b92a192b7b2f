#[tractor::main(loglevel = "", worker_threads = 0)]
async fn main() {}
