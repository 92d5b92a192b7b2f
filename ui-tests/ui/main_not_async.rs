#[tractor::main]
fn main() {}
