use tractor::Context;

#[tractor::context]
fn count(ctx: Context<u32, (), ()>, limit: u32) -> u32 {
    let _ = ctx;
    limit
}

fn main() {}
