//! Signatures #[tractor::rpc] accepts, and the stubs they get.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Point {
    x: i32,
    y: i32,
}

#[tractor::rpc]
async fn unit() {}

#[tractor::rpc]
fn blocking(mut n: u64) -> u64 {
    n += 1;
    n
}

#[tractor::rpc]
pub async fn structs(p: self::Point, scale: i32) -> Point {
    Point { x: p.x * scale, y: p.y * scale }
}

#[tractor::rpc]
pub(crate) async fn tractor_result(items: Vec<String>) -> tractor::Result<usize> {
    Ok(items.len())
}

#[tractor::rpc]
async fn io_result(path: String) -> std::io::Result<u64> {
    Ok(path.len() as u64)
}

#[tractor::rpc]
async fn string_error(flag: bool) -> Result<(), String> {
    if flag { Err("flagged".into()) } else { Ok(()) }
}

mod nested {
    #[tractor::rpc]
    pub async fn parent_type(p: super::Point) -> i32 {
        p.x
    }
}

#[cfg(any())]
#[tractor::rpc]
async fn compiled_out(x: NotAType) {}

fn main() {
    let _: tractor::Call<()> = unit::call();
    let _: tractor::Call<u64> = blocking::call(1);
    let _: tractor::Call<Point> = structs::call(Point { x: 1, y: 2 }, 3);
    let _: tractor::Call<usize> = tractor_result::call(vec![]);
    let _: tractor::Call<u64> = io_result::call(String::new());
    let _: tractor::Call<()> = string_error::call(true);
    let _: tractor::Call<i32> = nested::parent_type::call(Point { x: 1, y: 2 });
    assert_eq!(blocking::NAME, concat!(module_path!(), "::blocking"));
    assert_eq!(nested::parent_type::NAME, concat!(module_path!(), "::nested::parent_type"));
    // The functions stay callable locally.
    assert_eq!(blocking(41), 42);
}
