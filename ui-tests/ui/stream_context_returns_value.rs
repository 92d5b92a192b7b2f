use tractor::StreamContext;

#[tractor::stream]
async fn numbers(ctx: StreamContext<u32>, n: u32) -> Result<u32, String> {
    for i in 0..n {
        ctx.send_yield(i).await.map_err(|e| e.to_string())?;
    }
    Ok(n)
}

fn main() {}
