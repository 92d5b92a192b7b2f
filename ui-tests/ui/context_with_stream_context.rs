use tractor::StreamContext;

#[tractor::context]
async fn numbers(ctx: StreamContext<u32>) {
    let _ = ctx.send_yield(1).await;
}

fn main() {}
