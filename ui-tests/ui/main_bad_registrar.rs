#[tractor::main(registrar = "localhost")]
async fn main() {}
