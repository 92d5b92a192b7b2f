use std::rc::Rc;

use tractor::Context;

#[tractor::context]
async fn shares(ctx: Context<Rc<u32>, (), Rc<String>>) {
    let _ = ctx;
}

fn main() {}
