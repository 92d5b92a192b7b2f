//! Support for the code the macros generate. Not public API: names here
//! may change in any release.

pub use linkme;

pub use crate::registry::{
    ArgsError, ErrorProbe, Failure, Invocation, RPC_TABLE, RemoteError, Reply, RpcEntry,
    ViaDisplay, ViaNothing, ViaStdError, decode_args,
};
pub use crate::runtime::{InlineBody, RootBody, RootConfig, SpawnedBody};

use crate::call::Call;

/// A call of the function whose wire name is `name`, with `args` (the
/// arguments as a tuple).
pub fn call<T, A: serde::Serialize>(name: &'static str, args: &A) -> Call<T> {
    Call::by_name(name, args)
}
