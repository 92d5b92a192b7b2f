// Test roots always run a private registrar.
#[tractor::test(registrar = "127.0.0.1:1616")]
async fn spawns() {}

fn main() {}
