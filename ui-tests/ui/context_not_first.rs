use tractor::Context;

#[tractor::context]
async fn count(limit: u32, ctx: Context<u32, (), ()>) -> u32 {
    let _ = ctx;
    limit
}

fn main() {}
