use tractor::Context;

#[tractor::rpc]
async fn count(ctx: Context<u32, (), ()>) {
    let _ = ctx.started(1).await;
}

fn main() {}
