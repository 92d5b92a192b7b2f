//! [`Call`]: a remote function applied to its arguments, ready to send.

use std::borrow::Cow;
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
    name: Cow<'static, str>,
    args: Result<Vec<u8>>,
    _output: PhantomData<fn() -> T>,
}

impl<T> Call<T> {
    /// A call of the remote function whose wire name is `name`, with
    /// `args`, the arguments as a tuple.
    ///
    /// This is the untyped door, for functions not linked into the calling
    /// executable (another program's, found through discovery): nothing
    /// checks that `args` and `T` match the function's signature until the
    /// remote actor decodes them. Prefer the generated `f::call` stubs.
    ///
    /// ```
    /// let call: tractor::Call<u64> = tractor::Call::by_name("other_program::add", &(1u64, 2u64));
    /// assert_eq!(call.name(), "other_program::add");
    /// ```
    pub fn by_name<A: Serialize>(name: impl Into<Cow<'static, str>>, args: &A) -> Self {
        let name = name.into();
        let args = postcard::to_allocvec(args)
            .map_err(|err| Error::codec(format!("the arguments of {name}"), err));
        Call {
            name,
            args,
            _output: PhantomData,
        }
    }

    /// The function's wire name: its full module path, e.g.
    /// `"my_crate::workers::add"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The wire name and the encoded arguments (or why they could not be
    /// encoded).
    pub(crate) fn into_parts(self) -> (Cow<'static, str>, Result<Vec<u8>>) {
        (self.name, self.args)
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
