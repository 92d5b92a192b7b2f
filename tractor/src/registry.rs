//! The link-time table of remote functions.
//!
//! Every `#[tractor::rpc]` adds one [`RpcEntry`] to [`RPC_TABLE`], a
//! `linkme` distributed slice, so the table is complete before `main` runs
//! and needs no registration code. A child actor is the same executable as
//! its parent, so both hold the same table: a call names a function by its
//! wire name (`module::path::fn`) and the callee finds it here.
//!
//! Beware the linker: a crate that only contributes entries and is never
//! otherwise referenced is dropped from the binary, and its functions with
//! it. Reference something from such a crate (or `use it as _;`).

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;

use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::error::RemoteActorError;
use crate::ipc::msg::{WireError, sources_of};
use crate::uid::ActorUid;

/// Every remote function linked into this binary.
#[linkme::distributed_slice]
pub static RPC_TABLE: [RpcEntry];

/// One remote function: its wire name and how to invoke it.
pub struct RpcEntry {
    name: &'static str,
    invoke: fn(&[u8]) -> Invocation,
}

impl RpcEntry {
    /// An entry for function `name` (its full module path).
    pub const fn new(name: &'static str, invoke: fn(&[u8]) -> Invocation) -> Self {
        RpcEntry { name, invoke }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The module the function is defined in: what `enable_modules` names.
    pub(crate) fn module(&self) -> &'static str {
        module_of(self.name)
    }

    /// Decodes `args` and starts the function (panics included in the
    /// reply, never unwinding into the caller).
    pub(crate) fn invoke(&self, args: &[u8]) -> Invocation {
        std::panic::catch_unwind(|| (self.invoke)(args))
            .unwrap_or_else(|panic| Invocation::Failed(panic_reply(&*panic)))
    }
}

pub(crate) fn module_of(wire_name: &str) -> &str {
    wire_name.rsplit_once("::").map_or("", |(module, _)| module)
}

/// The table as a map, built on first use.
fn table() -> &'static Result<HashMap<&'static str, &'static RpcEntry>, String> {
    static TABLE: OnceLock<Result<HashMap<&'static str, &'static RpcEntry>, String>> =
        OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::with_capacity(RPC_TABLE.len());
        for entry in RPC_TABLE.iter() {
            if map.insert(entry.name, entry).is_some() {
                return Err(format!(
                    "two remote functions are registered as `{}`; is the same crate linked \
                     twice in two versions?",
                    entry.name
                ));
            }
        }
        Ok(map)
    })
}

/// Checked when an actor starts: a duplicate wire name is a startup error.
pub(crate) fn check() -> Result<(), Error> {
    table()
        .as_ref()
        .map(|_| ())
        .map_err(|msg| Error::other(msg.clone()))
}

pub(crate) fn lookup(name: &str) -> Option<&'static RpcEntry> {
    table().as_ref().ok()?.get(name).copied()
}

/// A started remote function, not yet run.
pub enum Invocation {
    #[doc(hidden)]
    Future(Pin<Box<dyn Future<Output = Reply> + Send>>),
    #[doc(hidden)]
    Blocking(Box<dyn FnOnce() -> Reply + Send>),
    #[doc(hidden)]
    Failed(Reply),
}

impl Invocation {
    /// An `async fn` body.
    pub fn future(future: impl Future<Output = Reply> + Send + 'static) -> Self {
        Invocation::Future(Box::pin(future))
    }

    /// A plain `fn` body: runs on a blocking thread of the actor's runtime.
    pub fn blocking(body: impl FnOnce() -> Reply + Send + 'static) -> Self {
        Invocation::Blocking(Box::new(body))
    }

    /// The arguments could not be decoded.
    pub fn failed(error: ArgsError) -> Self {
        Invocation::Failed(Reply(Err(Failure::foreign(
            "InvalidArguments",
            format!("the arguments could not be decoded: {}", error.0),
            Vec::new(),
        ))))
    }

    /// Runs to completion; a panic becomes a `"panic"` error.
    pub(crate) async fn run(self) -> Reply {
        match self {
            Invocation::Future(future) => AssertUnwindSafe(future)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| panic_reply(&*panic)),
            Invocation::Blocking(body) => {
                let ran = tokio::task::spawn_blocking(move || {
                    std::panic::catch_unwind(AssertUnwindSafe(body))
                })
                .await;
                match ran {
                    Ok(Ok(reply)) => reply,
                    Ok(Err(panic)) => panic_reply(&*panic),
                    Err(err) => Reply(Err(Failure::foreign(
                        "tractor::Error::Cancelled",
                        format!("the blocking task did not finish: {err}"),
                        Vec::new(),
                    ))),
                }
            }
            Invocation::Failed(reply) => reply,
        }
    }
}

fn panic_reply(panic: &(dyn Any + Send)) -> Reply {
    let message = if let Some(text) = panic.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    };
    Reply(Err(Failure::foreign("panic", message, Vec::new())))
}

/// What a remote function produced: its encoded value, or why it failed.
pub struct Reply(pub(crate) Result<Vec<u8>, Failure>);

impl Reply {
    /// The function returned `value`.
    pub fn value<T: Serialize + ?Sized>(value: &T) -> Reply {
        Reply(postcard::to_allocvec(value).map_err(|err| {
            Failure::foreign(
                "tractor::Error::Codec",
                format!(
                    "could not encode the return value ({}): {err}",
                    std::any::type_name::<T>()
                ),
                Vec::new(),
            )
        }))
    }

    /// The function returned an error.
    pub fn error(failure: Failure) -> Reply {
        Reply(Err(failure))
    }
}

/// A remote function's error, before it is stamped with the actor it was
/// raised in.
pub struct Failure(FailureKind);

enum FailureKind {
    /// A `tractor::Error`: relayed as itself.
    Tractor(Error),
    /// Any other error type.
    Foreign {
        type_name: String,
        message: String,
        sources: Vec<String>,
    },
}

impl Failure {
    fn foreign(type_name: impl Into<String>, message: String, sources: Vec<String>) -> Self {
        Failure(FailureKind::Foreign {
            type_name: type_name.into(),
            message,
            sources,
        })
    }

    fn probe<E: Any>(error: &E, or_else: impl FnOnce() -> Failure) -> Failure {
        match (error as &dyn Any).downcast_ref::<Error>() {
            Some(error) => Failure(FailureKind::Tractor(error.clone())),
            None => or_else(),
        }
    }

    /// The wire form, as sent by actor `me`.
    pub(crate) fn to_wire(&self, me: &ActorUid) -> WireError {
        match &self.0 {
            FailureKind::Tractor(error) => WireError::relay(error, me),
            FailureKind::Foreign {
                type_name,
                message,
                sources,
            } => WireError::Remote(
                RemoteActorError::new(type_name.clone(), message.clone(), me.clone())
                    .with_sources(sources.clone()),
            ),
        }
    }
}

/// Decodes a remote function's arguments.
pub fn decode_args<A: DeserializeOwned>(payload: &[u8]) -> Result<A, ArgsError> {
    postcard::from_bytes(payload).map_err(|err| ArgsError(err.to_string()))
}

/// Arguments that did not decode.
pub struct ArgsError(String);

/// Wraps an error for [`ViaStdError`] / [`ViaDisplay`], which pick the
/// richest conversion the error type supports (autoref specialization, in
/// generated code where the type is concrete).
pub struct ErrorProbe<'a, E>(&'a E);

impl<'a, E: RemoteError> ErrorProbe<'a, E> {
    /// Checks that `E` can travel (this is where a bad error type is
    /// reported) and wraps it.
    pub fn new(error: &'a E) -> Self {
        ErrorProbe(error)
    }
}

/// What the error type of a remote function's `Result` must be.
#[diagnostic::on_unimplemented(
    message = "the error type of a remote function must implement `Display` and be `'static`",
    label = "`{Self}` cannot be sent to the caller as a remote error",
    note = "the error travels as its type name and its `Display` text; implement `Display` (or use `tractor::Error::other`)"
)]
pub trait RemoteError: Display + 'static {}

impl<E: Display + 'static> RemoteError for E {}

/// For `std::error::Error`s: message plus `source()` chain.
pub trait ViaStdError {
    /// Converts the probed error.
    fn to_remote_error(self) -> Failure;
}

impl<E: std::error::Error + 'static> ViaStdError for &&ErrorProbe<'_, E> {
    fn to_remote_error(self) -> Failure {
        let error = self.0;
        Failure::probe(error, || {
            Failure::foreign(
                std::any::type_name::<E>(),
                error.to_string(),
                sources_of(error),
            )
        })
    }
}

/// For anything `Display`: the message only.
pub trait ViaDisplay {
    /// Converts the probed error.
    fn to_remote_error(self) -> Failure;
}

impl<E: Display + 'static> ViaDisplay for &ErrorProbe<'_, E> {
    fn to_remote_error(self) -> Failure {
        let error = self.0;
        Failure::probe(error, || {
            Failure::foreign(std::any::type_name::<E>(), error.to_string(), Vec::new())
        })
    }
}

/// Never chosen when `ErrorProbe::new` compiled; it only keeps a bad error
/// type down to the one error reported there.
pub trait ViaNothing {
    /// Converts the probed error.
    fn to_remote_error(self) -> Failure;
}

impl<E> ViaNothing for ErrorProbe<'_, E> {
    fn to_remote_error(self) -> Failure {
        Failure::foreign(std::any::type_name::<E>(), String::new(), Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn wire(failure: Failure) -> RemoteActorError {
        match failure.to_wire(&ActorUid::new("me")) {
            WireError::Remote(remote) => remote,
            other => panic!("expected a remote error, got {other:?}"),
        }
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the double borrow is how the probe picks
    fn probes_pick_the_richest_conversion() {
        let std_error = Outer(std::io::Error::other("inner"));
        let remote = wire((&&ErrorProbe::new(&std_error)).to_remote_error());
        assert!(remote.type_name().ends_with("Outer"));
        assert_eq!(remote.sources(), ["inner"]);

        let text = String::from("just text");
        let remote = wire((&&ErrorProbe::new(&text)).to_remote_error());
        assert_eq!(remote.type_name(), "alloc::string::String");
        assert_eq!(remote.message(), "just text");
    }
}
