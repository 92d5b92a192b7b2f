use tractor::Context;

#[tractor::context]
async fn relay(ctx: Context<(), u32, u32>, other: Context<(), u32, u32>) {
    let _ = (ctx, other);
}

fn main() {}
