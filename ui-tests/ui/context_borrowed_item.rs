use tractor::Context;

#[tractor::context]
async fn words(ctx: Context<&'static str, u32, &[u8]>) {
    let _ = ctx;
}

fn main() {}
