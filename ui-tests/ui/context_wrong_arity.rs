use tractor::Context;

#[tractor::context]
async fn count(ctx: Context<u32>) {
    let _ = ctx;
}

fn main() {}
