#[tractor::test]
fn spawns() {}

fn main() {}
