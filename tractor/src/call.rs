//! Calls: a remote function applied to its arguments, ready to send.
//!
//! [`Call`] is answered once; [`StreamCall`] opens a stream;
//! [`ContextCall`] opens a context. All encode their arguments when made,
//! so they are `Send` and `Sync` whatever the argument types, and carry
//! the function's wire name and, if set, a timeout.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ipc::credit::Window;

/// The default stream window: how many items a producer may send ahead of
/// its consumer (see [`StreamCall::window`]).
pub const DEFAULT_WINDOW: u32 = 16 * 1024;

/// The default stream window in bytes: how many bytes of items a producer
/// may send ahead of its consumer (see [`StreamCall::window_bytes`]).
pub const DEFAULT_WINDOW_BYTES: u32 = 1024 * 1024;

const DEFAULT: Window = Window {
    items: DEFAULT_WINDOW,
    bytes: DEFAULT_WINDOW_BYTES,
};

/// Decodes the answer of `call` (its payload) as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8], call: &str) -> Result<T> {
    postcard::from_bytes(payload).map_err(|err| {
        Error::codec(
            format!("the answer of {call} as {}", std::any::type_name::<T>()),
            err,
        )
    })
}

/// Between a function's name and its signature in what a call names (see
/// [`split_wire`]).
pub(crate) const SIGNATURE_MARK: char = '\u{1f}';

/// What a call names, `module::f` then (after [`SIGNATURE_MARK`]) the
/// function's argument and result types as the stub's build wrote them:
/// the name, and the signature if the caller sent one (a call made by name
/// alone, [`Call::by_name`], sends none).
pub(crate) fn split_wire(wire: &str) -> (&str, Option<&str>) {
    match wire.split_once(SIGNATURE_MARK) {
        Some((name, signature)) => (name, Some(signature)),
        None => (wire, None),
    }
}

/// A function's wire name and its encoded arguments.
pub(crate) struct Request {
    /// As it goes on the wire: from a stub, with the function's signature
    /// (see [`split_wire`]).
    pub(crate) name: Cow<'static, str>,
    pub(crate) args: Result<Vec<u8>>,
    pub(crate) timeout: Option<Duration>,
}

impl Request {
    /// The function's wire name alone, without its signature.
    pub(crate) fn plain_name(&self) -> &str {
        split_wire(&self.name).0
    }

    fn new<A: Serialize>(name: Cow<'static, str>, args: &A) -> Self {
        let args = postcard::to_allocvec(args).map_err(|err| err.to_string());
        Request::encoded(name, args)
    }

    fn encoded(name: Cow<'static, str>, args: std::result::Result<Vec<u8>, String>) -> Self {
        let plain = split_wire(&name).0;
        let args = args.map_err(|err| Error::codec(format!("the arguments of {plain}"), err));
        Request {
            name,
            args,
            timeout: None,
        }
    }
}

/// A call of a `#[tractor::rpc]` function with its arguments, returning `T`.
///
/// Made by the generated stub `f::call(..)`; run it with
/// [`Portal::run`](crate::Portal::run) or in a new actor with
/// [`ActorNursery::run_in_actor`](crate::ActorNursery::run_in_actor).
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
    request: Request,
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
        Call {
            request: Request::new(name.into(), args),
            _output: PhantomData,
        }
    }

    /// A call of `name` with arguments already encoded (by the stubs).
    pub(crate) fn encoded(name: &'static str, args: std::result::Result<Vec<u8>, String>) -> Self {
        Call {
            request: Request::encoded(name.into(), args),
            _output: PhantomData,
        }
    }

    /// The function's wire name: its full module path, e.g.
    /// `"my_crate::workers::add"`.
    pub fn name(&self) -> &str {
        self.request.plain_name()
    }

    /// Gives the call `timeout` to answer.
    ///
    /// No answer by then and [`Portal::run`](crate::Portal::run) (or the
    /// `result()` of a `run_in_actor` child) is an `Err` with
    /// [`Error::is_timeout`]; the remote task is cancelled, and the error
    /// comes once it has acknowledged (or a cancellation grace of 1 s has
    /// passed). The callee serves the call with that deadline in force:
    /// calls it makes without a timeout of their own end by then too (see
    /// [`current_deadline`](crate::current_deadline)). Without a timeout,
    /// a call made while serving a call with a deadline inherits what is
    /// left of it.
    ///
    /// ```
    /// # #[tractor::rpc] async fn slow() {}
    /// # async fn example(portal: tractor::Portal) -> tractor::Result<()> {
    /// use std::time::Duration;
    ///
    /// match portal.run(slow::call().timeout(Duration::from_millis(200))).await {
    ///     Err(err) if err.is_timeout() => println!("gave up on slow()"),
    ///     other => other?,
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout = Some(timeout);
        self
    }

    /// The timeout set with [`timeout`](Self::timeout), if any.
    pub fn timeout_set(&self) -> Option<Duration> {
        self.request.timeout
    }

    pub(crate) fn into_request(self) -> Request {
        self.request
    }
}

impl<T> fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("name", &self.request.plain_name())
            .field("output", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// A call of a `#[tractor::stream]` function with its arguments, yielding
/// `T`s.
///
/// Made by the generated stub `f::call(..)`; open it with
/// [`Portal::open_stream`](crate::Portal::open_stream) or in a new actor
/// with [`ActorNursery::run_in_actor`](crate::ActorNursery::run_in_actor).
///
/// ```
/// #[tractor::stream]
/// fn count_to(n: u32) -> impl futures::Stream<Item = u32> {
///     futures::stream::iter(0..n)
/// }
///
/// let call: tractor::StreamCall<u32> = count_to::call(10).window(64);
/// assert_eq!(call.window_size(), 64);
/// ```
#[must_use = "a StreamCall does nothing until passed to Portal::open_stream or run_in_actor"]
pub struct StreamCall<T> {
    request: Request,
    window: Window,
    _output: PhantomData<fn() -> T>,
}

impl<T> StreamCall<T> {
    /// A stream of the remote function whose wire name is `name`; the
    /// untyped door, as [`Call::by_name`].
    pub fn by_name<A: Serialize>(name: impl Into<Cow<'static, str>>, args: &A) -> Self {
        StreamCall {
            request: Request::new(name.into(), args),
            window: DEFAULT,
            _output: PhantomData,
        }
    }

    /// A stream of `name` with arguments already encoded (by the stubs).
    pub(crate) fn encoded(name: &'static str, args: std::result::Result<Vec<u8>, String>) -> Self {
        StreamCall {
            request: Request::encoded(name.into(), args),
            window: DEFAULT,
            _output: PhantomData,
        }
    }

    /// How many items the producer may send before the consumer takes them
    /// (at least 1; default [`DEFAULT_WINDOW`]). A larger window moves
    /// small items faster; a smaller one bounds the memory a fast producer
    /// can fill in its consumer.
    pub fn window(mut self, items: u32) -> Self {
        self.window.items = items.max(1);
        self
    }

    /// Bounds the open: the first item (or the stream's end) must come
    /// within `timeout`, or the stream's first item is an `Err` with
    /// [`Error::is_timeout`] and the remote function is cancelled. Once
    /// an item has come, the stream runs as long as it likes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout = Some(timeout);
        self
    }

    /// The flow-control window, in items.
    pub fn window_size(&self) -> u32 {
        self.window.items
    }

    /// How many bytes of items the producer may send before the consumer
    /// takes them (at least 1; default [`DEFAULT_WINDOW_BYTES`]); with
    /// the item window, what bounds the memory a stream can fill. A batch
    /// may go past it by one frame: an item larger than the window still
    /// goes, alone.
    pub fn window_bytes(mut self, bytes: u32) -> Self {
        self.window.bytes = bytes.max(1);
        self
    }

    /// The function's wire name.
    pub fn name(&self) -> &str {
        self.request.plain_name()
    }

    pub(crate) fn into_request(self) -> (Request, Window) {
        (self.request, self.window)
    }
}

impl<T> fmt::Debug for StreamCall<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamCall")
            .field("name", &self.request.plain_name())
            .field("item", &std::any::type_name::<T>())
            .field("window", &self.window.items)
            .field("window_bytes", &self.window.bytes)
            .finish_non_exhaustive()
    }
}

/// A call of a `#[tractor::context]` function with its arguments: the
/// function hands the caller an `S` when it starts, then the caller sends
/// `I`s and receives `O`s, and the function finally returns `T`.
///
/// Made by the generated stub `f::call(..)`; open it with
/// [`Portal::open_context`](crate::Portal::open_context).
///
/// ```
/// #[tractor::context]
/// async fn echo(ctx: tractor::Context<(), String, String>) -> tractor::Result<()> {
///     ctx.started(()).await
/// }
///
/// let call: tractor::ContextCall<(), String, String, ()> = echo::call().window(16);
/// assert_eq!(call.window_size(), 16);
/// ```
#[must_use = "a ContextCall does nothing until passed to Portal::open_context"]
pub struct ContextCall<S, I, O, T> {
    request: Request,
    window: Window,
    _types: PhantomData<ContextTypes<S, I, O, T>>,
}

/// What a context sends (`I`) and gets (`S`, `O`, `T`), as a type that is
/// `Send` and `Sync` whatever they are.
type ContextTypes<S, I, O, T> = fn(I) -> (S, O, T);

impl<S, I, O, T> ContextCall<S, I, O, T> {
    /// A context with the remote function whose wire name is `name`; the
    /// untyped door, as [`Call::by_name`].
    pub fn by_name<A: Serialize>(name: impl Into<Cow<'static, str>>, args: &A) -> Self {
        ContextCall {
            request: Request::new(name.into(), args),
            window: DEFAULT,
            _types: PhantomData,
        }
    }

    /// A context with `name`, arguments already encoded (by the stubs).
    pub(crate) fn encoded(name: &'static str, args: std::result::Result<Vec<u8>, String>) -> Self {
        ContextCall {
            request: Request::encoded(name.into(), args),
            window: DEFAULT,
            _types: PhantomData,
        }
    }

    /// How many items each side may send before the other takes them (at
    /// least 1; default [`DEFAULT_WINDOW`]), in both directions.
    pub fn window(mut self, items: u32) -> Self {
        self.window.items = items.max(1);
        self
    }

    /// The flow-control window, in items.
    pub fn window_size(&self) -> u32 {
        self.window.items
    }

    /// How many bytes of items the producer may send before the consumer
    /// takes them (at least 1; default [`DEFAULT_WINDOW_BYTES`]); with
    /// the item window, what bounds the memory a stream can fill. A batch
    /// may go past it by one frame: an item larger than the window still
    /// goes, alone.
    pub fn window_bytes(mut self, bytes: u32) -> Self {
        self.window.bytes = bytes.max(1);
        self
    }

    /// Bounds the open: the function must call `started` within
    /// `timeout`, or `open_context` fails with [`Error::is_timeout`] and
    /// the function is cancelled. Once started, the context runs as long
    /// as it likes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout = Some(timeout);
        self
    }

    /// The function's wire name.
    pub fn name(&self) -> &str {
        self.request.plain_name()
    }

    pub(crate) fn into_request(self) -> (Request, Window) {
        (self.request, self.window)
    }
}

impl<S, I, O, T> fmt::Debug for ContextCall<S, I, O, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextCall")
            .field("name", &self.request.plain_name())
            .field("started", &std::any::type_name::<S>())
            .field("sends", &std::any::type_name::<I>())
            .field("receives", &std::any::type_name::<O>())
            .field("output", &std::any::type_name::<T>())
            .field("window", &self.window.items)
            .field("window_bytes", &self.window.bytes)
            .finish_non_exhaustive()
    }
}
