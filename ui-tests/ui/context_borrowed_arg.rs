use tractor::Context;

#[tractor::context]
async fn greet(ctx: Context<(), (), String>, name: &str) {
    let _ = (ctx, name);
}

fn main() {}
