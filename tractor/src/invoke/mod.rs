//! Running a remote function: what the generated dispatch code hands the
//! actor ([`Invocation`]), what comes back ([`Reply`], [`Failure`]), and
//! how an error type is turned into a remote error ([`ErrorProbe`]).
//!
//! An invocation is one of five bodies: an `async fn`'s future, a plain
//! `fn` (run on a blocking thread), a stream, a stream-context function,
//! or a context (dialog) function.
//! Whatever it is, panics are caught and become `"panic"` errors; only
//! here does user code run.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures::{FutureExt, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod panic;

pub(crate) use panic::install_hook;

use crate::context::{Context, RawDialog};
use crate::error::{Error, Frames, RemoteActorError};
use crate::ipc::msg::{WireError, sources_of};
use crate::stream::produce;
use crate::stream::{RawContext, StreamContext};
use crate::uid::ActorUid;

/// A started remote function, not yet run.
pub struct Invocation(Body);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

enum Body {
    Future(BoxFuture<Reply>),
    Blocking(Box<dyn FnOnce() -> Reply + Send>),
    Stream(BoxFuture<Box<dyn produce::ItemSource>>),
    Context(Box<dyn FnOnce(RawContext) -> BoxFuture<Reply> + Send>),
    Dialog(Box<dyn FnOnce(RawDialog) -> BoxFuture<Reply> + Send>),
    Failed(Failure),
}

/// How the caller opened the call: what the body is handed.
pub(crate) enum Opened {
    Unary,
    Stream(RawContext),
    Context(RawDialog),
}

/// How a served call ended.
pub(crate) enum Outcome {
    /// A unary call's encoded value.
    Value(Vec<u8>),
    /// A stream ended normally.
    Ended,
    Failed(Failure),
}

impl Invocation {
    /// An `async fn` body.
    pub fn future(future: impl Future<Output = Reply> + Send + 'static) -> Self {
        Invocation(Body::Future(Box::pin(future)))
    }

    /// A plain `fn` body: runs on a blocking thread of the actor's runtime.
    pub fn blocking(body: impl FnOnce() -> Reply + Send + 'static) -> Self {
        Invocation(Body::Blocking(Box::new(body)))
    }

    /// A stream function: `make` resolves to the stream, made an
    /// [`ItemSource`] by [`item_source`].
    pub fn stream(make: impl Future<Output = ItemSource> + Send + 'static) -> Self {
        Invocation(Body::Stream(Box::pin(async move { make.await.0 })))
    }

    /// A stream-context function: `body` pushes through the context.
    pub fn context<T, F, Fut>(body: F) -> Self
    where
        T: 'static,
        F: FnOnce(StreamContext<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        Invocation(Body::Context(Box::new(move |raw| {
            Box::pin(body(StreamContext::new(raw)))
        })))
    }

    /// A `#[tractor::context]` function: `body` talks through the context.
    pub fn dialog<S, I, O, F, Fut>(body: F) -> Self
    where
        S: 'static,
        I: 'static,
        O: 'static,
        F: FnOnce(Context<S, I, O>) -> Fut + Send + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        Invocation(Body::Dialog(Box::new(move |raw| {
            Box::pin(body(Context::new(raw)))
        })))
    }

    /// The arguments could not be decoded.
    pub fn failed(error: ArgsError) -> Self {
        Invocation::failure(Failure::foreign(
            "InvalidArguments",
            format!("the arguments could not be decoded: {}", error.0),
            Vec::new(),
        ))
    }

    pub(crate) fn failure(failure: Failure) -> Self {
        Invocation(Body::Failed(failure))
    }

    /// Runs function `name` to completion; a stream (opened as one, with
    /// `stream`) sends its items there. A panic becomes a `"panic"` error.
    pub(crate) async fn run(self, name: &str, stream: Opened) -> Outcome {
        let ran = AssertUnwindSafe(panic::InCall(self.run_body(name, stream)))
            .catch_unwind()
            .await;
        match ran {
            Ok(Outcome::Failed(Failure(FailureKind::Unencodable { type_name, reason }))) => {
                Outcome::Failed(Failure::foreign(
                    "tractor::Error::Codec",
                    format!(
                        "the answer of `{name}` could not be sent: a value of type {type_name} \
                         does not encode: {reason}"
                    ),
                    Vec::new(),
                ))
            }
            Ok(outcome) => outcome,
            Err(panic) => Outcome::Failed(panic_failure(&*panic)),
        }
    }

    async fn run_body(self, name: &str, opened: Opened) -> Outcome {
        match (self.0, opened) {
            (Body::Failed(failure), _) => Outcome::Failed(failure),
            (Body::Future(future), Opened::Unary) => future.await.into(),
            (Body::Blocking(body), Opened::Unary) => {
                let ran = tokio::task::spawn_blocking(move || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| panic::in_call(body)))
                })
                .await;
                match ran {
                    Ok(Ok(reply)) => reply.into(),
                    Ok(Err(panic)) => Outcome::Failed(panic_failure(&*panic)),
                    Err(err) => Outcome::Failed(Failure::foreign(
                        "tractor::Error::Cancelled",
                        format!("the blocking task did not finish: {err}"),
                        Vec::new(),
                    )),
                }
            }
            (Body::Stream(make), Opened::Stream(context)) => {
                let source = make.await;
                match produce::produce(&context, source).await {
                    Ok(()) => Outcome::Ended,
                    Err(err) => Outcome::Failed(Failure::foreign(
                        err.kind_name(),
                        format!("an item of `{name}` could not be sent: {err}"),
                        Vec::new(),
                    )),
                }
            }
            (Body::Context(body), Opened::Stream(context)) => match body(context).await.0 {
                Ok(_) => Outcome::Ended,
                Err(failure) => Outcome::Failed(failure),
            },
            (Body::Dialog(body), Opened::Context(dialog)) => {
                match dialog.run(async { body(dialog.clone()).await.0 }).await {
                    Ok(_) if !dialog.is_started() => Outcome::Failed(Failure::foreign(
                        "ContextNotStarted",
                        format!(
                            "`{name}` returned without calling ctx.started(..): a context \
                             function starts before it returns"
                        ),
                        Vec::new(),
                    )),
                    Ok(value) => Outcome::Value(value),
                    Err(failure) => Outcome::Failed(failure),
                }
            }
            (body, opened) => {
                let how = match body {
                    Body::Future(_) | Body::Blocking(_) => {
                        "a plain function: call it with Portal::run"
                    }
                    Body::Stream(_) | Body::Context(_) => {
                        "a stream function: open it with Portal::open_stream"
                    }
                    _ => "a context function: open it with Portal::open_context",
                };
                let opened = match opened {
                    Opened::Unary => "called",
                    Opened::Stream(_) => "opened as a stream",
                    Opened::Context(_) => "opened as a context",
                };
                Outcome::Failed(Failure::foreign(
                    "WrongCallKind",
                    format!("`{name}` was {opened}, but it is {how}"),
                    Vec::new(),
                ))
            }
        }
    }
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        match reply.0 {
            Ok(value) => Outcome::Value(value),
            Err(failure) => Outcome::Failed(failure),
        }
    }
}

pub(crate) fn panic_failure(panic: &(dyn Any + Send)) -> Failure {
    let message = if let Some(text) = panic.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    };
    let caught = panic::take_caught();
    Failure(FailureKind::Panic {
        message,
        location: caught.as_ref().and_then(|caught| caught.location.clone()),
        frames: caught.and_then(|caught| caught.frames),
    })
}

/// What a remote function produced: its encoded value, or why it failed.
pub struct Reply(pub(crate) Result<Vec<u8>, Failure>);

impl Reply {
    /// The function returned `value`.
    pub fn value<T: Serialize + ?Sized>(value: &T) -> Reply {
        Reply(postcard::to_allocvec(value).map_err(|err| {
            Failure(FailureKind::Unencodable {
                type_name: std::any::type_name::<T>(),
                reason: err.to_string(),
            })
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
    /// The function's value did not encode; reported naming the function
    /// once it is known (see `Invocation::run`).
    Unencodable {
        type_name: &'static str,
        reason: String,
    },
    /// A panic, with its place and (if captured) its stack.
    Panic {
        message: String,
        location: Option<String>,
        frames: Option<Frames>,
    },
    /// Any other error type.
    Foreign {
        type_name: String,
        message: String,
        sources: Vec<String>,
    },
}

impl Failure {
    pub(crate) fn foreign(
        type_name: impl Into<String>,
        message: String,
        sources: Vec<String>,
    ) -> Self {
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
            FailureKind::Panic {
                message,
                location,
                frames,
            } => WireError::Remote(
                RemoteActorError::new("panic", message.clone(), me.clone())
                    .with_panic(location.clone(), frames.clone()),
            ),
            FailureKind::Unencodable { type_name, reason } => {
                WireError::Remote(RemoteActorError::new(
                    "tractor::Error::Codec",
                    format!("a value of type {type_name} does not encode: {reason}"),
                    me.clone(),
                ))
            }
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

/// A remote function's arguments, decoded one after the other (the wire
/// form of the tuple of them).
pub struct ArgsReader<'a>(&'a [u8]);

impl<'a> ArgsReader<'a> {
    /// Reads from a call's payload.
    pub fn new(payload: &'a [u8]) -> Self {
        ArgsReader(payload)
    }

    /// The next argument.
    pub fn take<T: DeserializeOwned>(&mut self) -> Result<T, ArgsError> {
        let (value, rest) =
            postcard::take_from_bytes(self.0).map_err(|err| ArgsError(err.to_string()))?;
        self.0 = rest;
        Ok(value)
    }
}

/// A call's arguments, encoded one after the other; the first failure is
/// kept for the call to report.
#[derive(Default)]
pub struct ArgsWriter {
    bytes: Vec<u8>,
    failed: Option<String>,
}

impl ArgsWriter {
    /// No arguments yet.
    pub fn new() -> Self {
        ArgsWriter::default()
    }

    /// Appends the next argument.
    pub fn put<T: Serialize + ?Sized>(&mut self, value: &T) {
        if self.failed.is_some() {
            return;
        }
        match postcard::to_extend(value, std::mem::take(&mut self.bytes)) {
            Ok(bytes) => self.bytes = bytes,
            Err(err) => self.failed = Some(err.to_string()),
        }
    }

    /// The encoded arguments, or why one did not encode.
    pub(crate) fn finish(self) -> Result<Vec<u8>, String> {
        match self.failed {
            Some(why) => Err(why),
            None => Ok(self.bytes),
        }
    }
}

/// A stream, its items encoded as they are sent.
pub struct ItemSource(Box<dyn produce::ItemSource>);

/// Erases a stream's type for [`Invocation::stream`].
pub fn item_source<S>(stream: S) -> ItemSource
where
    S: Stream + Send + 'static,
    S::Item: Serialize + Send,
{
    ItemSource(produce::source(stream))
}

/// Arguments that did not decode.
pub struct ArgsError(String);

/// Wraps an error for [`ViaStdError`] / [`ViaDisplay`], which pick the
/// richest conversion the error type supports (autoref specialization, in
/// generated code where the type is concrete).
pub struct ErrorProbe<'a, E>(&'a E);

impl<'a, E> ErrorProbe<'a, E> {
    /// Wraps the error (whether its type can travel is checked by the
    /// generated code, which reports it on the function's return type).
    pub fn new(error: &'a E) -> Self {
        ErrorProbe(error)
    }
}

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
