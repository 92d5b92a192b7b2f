// All the mistakes in one signature are reported together.
use tractor::Context;

#[tractor::context(window = 4)]
unsafe fn everything<T>(_ctx: Context<&'static str, (), ()>, (_x, _y): (u8, u8), _more: Context<(), (), ()>) {}

fn main() {}
