//! Streaming between actors.
//!
//! A `#[tractor::stream]` function in one actor is consumed as a local
//! [`futures::Stream`] in another ([`RemoteStream`]). The function either
//! returns `impl Stream<Item = T>` (any stream: `futures::stream::iter`,
//! `async_stream::stream!` for generator-style bodies, a channel receiver)
//! or takes a [`StreamContext<T>`] and pushes with `ctx.send_yield(v)`,
//! possibly from several tasks at once.
//!
//! Items travel in batches, many to a frame, and are decoded in place
//! ([`inbox`], [`outlet`], [`produce`]): a small item costs little more
//! than its encoding and decoding.
//!
//! Each stream has its own credit window (`ipc::credit`), so many streams and
//! calls share one channel without blocking one another, a fast producer
//! cannot flood its consumer, and a slow consumer slows its producer.
//! Dropping a [`RemoteStream`] cancels the producing function; a producer
//! that fails or whose actor is cancelled ends the stream with an error.

mod context;
pub(crate) mod inbox;
pub(crate) mod outlet;
pub(crate) mod produce;
mod remote;

pub(crate) use context::RawContext;
pub use context::StreamContext;
pub(crate) use remote::RawStream;
pub use remote::RemoteStream;
