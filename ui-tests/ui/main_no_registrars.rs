#[tractor::main(registrar = [])]
async fn main() {}
