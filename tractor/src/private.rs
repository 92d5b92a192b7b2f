//! Support for the code the macros generate. Not public API: names here
//! may change in any release.

pub use futures::Stream;
pub use linkme;
pub use serde;

pub use crate::invoke::{
    ArgsError, ArgsReader, ArgsWriter, ErrorProbe, Failure, Invocation, ItemSource, Reply,
    ViaDisplay, ViaNothing, ViaStdError, item_source,
};
pub use crate::registry::{RPC_TABLE, RpcEntry};
pub use crate::runtime::{InlineBody, RootBody, SpawnedBody};

/// The root of the test whose function's full path is `path` (crate name
/// first): what `#[tractor::test]` expands to.
pub fn test_root(path: &'static str) -> crate::RootBuilder {
    crate::RootBuilder::test(path)
}

use crate::call::{Call, ContextCall, StreamCall};

/// Feeds untrusted bytes to every decoder that reads from other processes
/// (frames, envelopes, error trees, the opening exchange): the fuzz target.
pub fn decode_untrusted(data: &[u8]) {
    crate::ipc::untrusted::decode(data);
}

/// Feeds untrusted bytes through the real paths: an accepting opening,
/// then a live channel's reader with a call and a stream of ours waiting
/// (see the fuzz target).
pub fn drive_untrusted(data: &[u8]) {
    let _ = crate::ipc::untrusted::drive(data);
}

/// A call of the function whose wire name is `name`, with `args`.
pub fn call<T>(name: &'static str, args: ArgsWriter) -> Call<T> {
    Call::encoded(name, args.finish())
}

/// A stream of the function whose wire name is `name`, with `args`.
pub fn stream_call<T>(name: &'static str, args: ArgsWriter) -> StreamCall<T> {
    StreamCall::encoded(name, args.finish())
}

/// A context call of the function whose wire name is `name`, with `args`.
pub fn context_call<S, I, O, T>(name: &'static str, args: ArgsWriter) -> ContextCall<S, I, O, T> {
    ContextCall::encoded(name, args.finish())
}
