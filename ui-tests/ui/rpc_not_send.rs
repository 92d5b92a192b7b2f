use std::rc::Rc;

#[tractor::rpc]
async fn holds_rc_across_await() -> u32 {
    let shared = Rc::new(1);
    tokio_yield().await;
    *shared
}

async fn tokio_yield() {}

fn main() {}
