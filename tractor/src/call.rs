//! [`Call`]: a remote function applied to its arguments, ready to send.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;

use crate::error::{Error, Result};

/// A call of a `#[tractor::rpc]` function with its arguments, returning `T`.
///
/// Made by the generated stub `f::call(..)`; run it with
/// [`Portal::run`](crate::Portal::run) or in a new actor with
/// [`ActorNursery::run_in_actor`](crate::ActorNursery::run_in_actor). The
/// arguments are encoded when the call is made, so a `Call` is `Send` and
/// `Sync` whatever the argument types.
///
/// ```
/// #[tractor::rpc]
/// fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// let call: tractor::Call<u64> = add::call(1, 2);
/// assert!(call.name().ends_with("::add"));
/// ```
#[must_use = "a Call does nothing until passed to Portal::run or run_in_actor"]
pub struct Call<T> {
    name: &'static str,
    args: Result<Vec<u8>>,
    _output: PhantomData<fn() -> T>,
}

impl<T> Call<T> {
    pub(crate) fn new<A: Serialize>(name: &'static str, args: &A) -> Self {
        Call {
            name,
            args: postcard::to_allocvec(args)
                .map_err(|err| Error::codec(format!("the arguments of {name}"), err)),
            _output: PhantomData,
        }
    }

    /// The function's wire name: its full module path, e.g.
    /// `"my_crate::workers::add"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The encoded arguments, or why they could not be encoded.
    pub(crate) fn into_args(self) -> Result<Vec<u8>> {
        self.args
    }
}

impl<T> fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("name", &self.name)
            .field("output", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}
