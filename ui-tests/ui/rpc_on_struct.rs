#[tractor::rpc]
struct NotAFunction;

fn main() {}
