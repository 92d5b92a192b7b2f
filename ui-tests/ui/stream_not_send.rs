use std::rc::Rc;

#[tractor::stream]
async fn rc_stream() -> impl futures::Stream<Item = u32> {
    let shared = Rc::new(1);
    futures::future::ready(()).await;
    futures::stream::iter(vec![*shared])
}

fn main() {}
