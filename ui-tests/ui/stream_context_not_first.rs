use tractor::StreamContext;

#[tractor::stream]
async fn numbers(n: u32, ctx: StreamContext<u32>) {
    for i in 0..n {
        let _ = ctx.send_yield(i).await;
    }
}

fn main() {}
