use tractor::Context;

struct Plain {
    value: u32,
}

#[tractor::context]
async fn plains(ctx: Context<(), u32, Plain>) {
    let _ = ctx;
}

fn main() {}
