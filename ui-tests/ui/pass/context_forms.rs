//! Signatures #[tractor::context] accepts, and the stubs they get.

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tractor::Context;

#[derive(Serialize, Deserialize)]
pub struct Point {
    x: i32,
    y: i32,
}

#[tractor::context]
async fn unit(ctx: Context<(), (), ()>) {
    let _ = ctx.started(()).await;
}

#[tractor::context]
pub async fn value(ctx: tractor::Context<u32, String, String>, limit: u32) -> u64 {
    let _ = ctx.started(limit).await;
    let Ok(mut stream) = ctx.open_stream().await else {
        return 0;
    };
    let mut echoed = 0;
    while let Some(Ok(line)) = stream.next().await {
        let _ = stream.send(line).await;
        echoed += 1;
    }
    echoed
}

#[tractor::context]
pub(crate) async fn fallible(mut ctx: Context<Point, Vec<u8>, Point>) -> tractor::Result<Point> {
    let _ = &mut ctx;
    ctx.started(Point { x: 0, y: 0 }).await?;
    Ok(Point { x: 1, y: 2 })
}

#[tractor::context]
async fn several(
    ctx: ::tractor::Context<(), u8, (u8, String)>,
    name: String,
    scale: i32,
    p: self::Point,
) -> Result<i32, String> {
    let _ = (ctx, name);
    Ok(p.x * scale)
}

#[tractor::context]
async fn unit_result(ctx: Context<(), (), ()>) -> Result<(), std::io::Error> {
    let _ = ctx;
    Ok(())
}

mod nested {
    #[tractor::context]
    pub async fn parent_type(ctx: tractor::Context<super::Point, (), ()>, p: super::Point) -> i32 {
        let _ = ctx.started(super::Point { x: p.x, y: p.y }).await;
        p.x
    }
}

#[cfg(any())]
#[tractor::context]
async fn compiled_out(ctx: Context<NotAType, (), ()>) {}

fn main() {
    let _: tractor::ContextCall<(), (), (), ()> = unit::call();
    let _: tractor::ContextCall<u32, String, String, u64> = value::call(3).window(8);
    let _: tractor::ContextCall<Point, Vec<u8>, Point, Point> = fallible::call();
    let _: tractor::ContextCall<(), u8, (u8, String), i32> =
        several::call("x".into(), 2, Point { x: 1, y: 2 });
    let _: tractor::ContextCall<(), (), (), ()> = unit_result::call();
    let _: tractor::ContextCall<Point, (), (), i32> = nested::parent_type::call(Point { x: 1, y: 2 });
    assert_eq!(value::NAME, concat!(module_path!(), "::value"));
    assert_eq!(nested::parent_type::NAME, concat!(module_path!(), "::nested::parent_type"));
    // The functions stay functions (their calls need a `Context`).
    let _ = unit_result;
}
