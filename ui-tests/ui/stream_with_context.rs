#[tractor::stream]
async fn count(ctx: tractor::Context<(), (), u32>) {
    let _ = ctx;
}

fn main() {}
