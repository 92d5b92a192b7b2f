#[tractor::main(registrar = ["10.0.0.1:1616", "nowhere", 1616])]
async fn main() {}
