use tractor::StreamContext;

#[tractor::stream]
fn numbers(ctx: StreamContext<u32>, n: u32) {
    drop((ctx, n));
}

fn main() {}
