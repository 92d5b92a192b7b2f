use std::rc::Rc;

use tractor::Context;

#[tractor::context]
async fn holds_rc_across_await(ctx: Context<u32, (), ()>) -> u32 {
    let shared = Rc::new(1);
    let _ = ctx.started(*shared).await;
    *shared
}

fn main() {}
