//! Structured-concurrent, process-based actors.
//!
//! Every actor is an OS process (this program's own executable, started
//! again) running a tokio runtime. Actors share nothing and talk through
//! typed messages; every actor has a supervising parent, no actor outlives
//! its parent, errors always travel back to the parent, and cancelling a
//! nursery cancels its whole subtree.
//!
//! - [`#[tractor::main]`](main) / [`#[tractor::test]`](test) start the root
//!   actor (and turn re-executed children into actors);
//! - [`#[tractor::rpc]`](rpc) makes a plain function callable from other
//!   actors through a typed stub, `f::call(args)`;
//! - [`open_nursery`] spawns actors ([`ActorNursery::run_in_actor`] for one
//!   call, [`ActorNursery::start_actor`] for a daemon) and supervises them;
//!   [`open_nursery_with`] restarts failed children under a [`Supervisor`]
//!   (one_for_one, one_for_all, rest_for_one) behind the same portals;
//! - a [`Portal`] calls into another actor: `portal.run(f::call(..))`;
//! - [`#[tractor::stream]`](stream) streams items to another actor, and
//!   [`#[tractor::context]`](context) opens a typed two-way dialog with one
//!   ([`Portal::open_context`]);
//! - every call takes a [`timeout`](Call::timeout), which the calls it makes
//!   inherit ([`current_deadline`]).
//!
//! ```no_run
//! use tractor::ActorNursery;
//!
//! #[tractor::rpc]
//! async fn cellar_door() -> String {
//!     "Dang that's beautiful".to_string()
//! }
//!
//! #[tractor::main]
//! async fn main() -> tractor::Result<()> {
//!     let answer = tractor::open_nursery(async |n: &ActorNursery| {
//!         let portal = n.run_in_actor("some_linguist", cellar_door::call()).await?;
//!         portal.result().await
//!     })
//!     .await?;
//!     println!("{answer}");
//!     Ok(())
//! }
//! ```
//!
//! # Things to know
//!
//! - Arguments and results travel as postcard. A `Vec<u8>` goes through
//!   serde byte by byte (~320 MB/s); use `serde_bytes::ByteBuf` or
//!   `bytes::Bytes` for bulk data (GB/s).
//! - The macros recognise `Result<T, E>` and `impl Stream<Item = T>` by
//!   syntax: a type alias that hides them is not seen through.
//! - Remote functions are found through a link-time table. The linker drops
//!   a crate that only contributes remote functions and is never otherwise
//!   referenced; refer to something in it (`use that_crate as _;`).
//! - An actor serves only the functions of modules enabled for it
//!   (`enable_modules`); `run_in_actor` enables its call's module.

#![warn(missing_docs)]

// The crate's own remote functions (discovery) use its own macros, which
// name `::tractor`.
extern crate self as tractor;

mod actor;
mod auth;
mod budget;
mod call;
mod children;
mod connections;
mod context;
mod deadline;
mod discovery;
mod error;
mod invoke;
mod ipc;
mod lineage;
mod lock;
pub mod log;
mod nursery;
mod platform;
mod portal;
mod registrar;
mod registry;
mod runtime;
mod server;
mod signals;
mod spawn;
mod stream;
mod uid;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// Emits what `#[tractor::rpc]`, `#[tractor::stream]` and
/// `#[tractor::context]` generate beside a function. Through this macro, the
/// attribute put on a method (where a module's items cannot go) gives one
/// error naming the rule.
#[doc(hidden)]
#[macro_export]
macro_rules! remote_functions_are_free_functions {
    ($($items:tt)*) => { $($items)* };
}

pub use actor::{Actor, current_actor};
pub use auth::{SECRET_ENV, SECRET_FILE_ENV};
pub use call::{Call, ContextCall, DEFAULT_WINDOW, DEFAULT_WINDOW_BYTES, StreamCall};
pub use context::{Context, ContextHandle, MsgStream};
pub use deadline::current_deadline;
pub use discovery::{find_actor, get_registrar, wait_for_actor};
pub use error::{Error, RemoteActorError, Result};
pub use ipc::limits::DEFAULT_MAX_CONCURRENT_CALLS;
pub use ipc::tls::{TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV, TRANSPORT_ENV};
pub use ipc::transport::HOST_ENV;
pub use nursery::{
    ActorNursery, Daemon, Restart, RunIn, RunTarget, SpawnBuilder, Supervisor, open_nursery,
    open_nursery_with,
};
pub use portal::{Portal, RunPortal};
pub use runtime::{DEFAULT_CHILD_WORKERS, DEFAULT_REGISTRAR, REGISTRAR_ENV, Root, RootBuilder};
pub use spawn::ssh::SSH_COMMAND_ENV;
pub use spawn::{START_METHOD_ENV, StartMethod};
pub use stream::{RemoteStream, StreamContext};
pub use uid::ActorUid;

/// Makes a free function callable from other actors.
///
/// The function stays as it is, callable locally. Beside it appears its
/// stub, an item of the same name and visibility (a type, so it lives in
/// the type namespace next to the function) with:
/// - `NAME`, the function's wire name (its full module path, or the one
///   given with `name = ".."`, below);
/// - `call(args..) -> tractor::Call<T>`, a typed stub to pass to
///   [`Portal::run`] or [`ActorNursery::run_in_actor`], where `T` is the
///   return type, or `Result<T, E>`'s `T` (an `Err` travels as a
///   [`RemoteActorError`] with `E`'s type name and message; `E: Display`).
///
/// Functions may be `async` or not (a plain `fn` runs on a blocking thread
/// of the actor); an `async fn`'s future must be `Send`. Arguments must be
/// owned (`Serialize + DeserializeOwned`), named by plain identifiers; the
/// function cannot be generic or a method. It may be defined in a block
/// (a test's body), next to the types it uses. A type that breaks a rule
/// is reported on that type, by the rule's name (e.g.
/// `arguments_must_be_serializable`).
///
/// Every call also carries the function's argument and result types: an
/// actor whose build has a function of that name with other types answers
/// a `SignatureMismatch` error naming both. The one option,
/// `#[tractor::rpc(name = "module::function")]` (also on `stream` and
/// `context`), gives a wire name that stays put when the function moves,
/// or is shared by programs built from different crates; its module part
/// is what `enable_modules` names.
///
/// ```
/// #[tractor::rpc(name = "billing::charge")]
/// async fn charge(cents: u64) -> u64 {
///     cents
/// }
/// assert_eq!(charge::NAME, "billing::charge");
/// ```
///
/// ```
/// #[tractor::rpc]
/// pub async fn greet(name: String, times: u32) -> String {
///     format!("hello {name}").repeat(times as usize)
/// }
///
/// #[tractor::rpc]
/// fn parse(text: String) -> Result<u64, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// let call: tractor::Call<String> = greet::call("donny".into(), 2);
/// let call: tractor::Call<u64> = parse::call("42".into());
/// assert_eq!(greet::NAME, concat!(module_path!(), "::greet"));
/// ```
pub use tractor_macros::rpc;

/// Makes a free function a stream that other actors consume.
///
/// Two forms, both giving a stub of the same name with `NAME` and
/// `call(args..) -> tractor::StreamCall<T>`, to pass to
/// [`Portal::open_stream`] or [`ActorNursery::run_in_actor`]:
///
/// - a function (async or not) returning `impl Stream<Item = T>`. For
///   generator-style bodies, `async_stream::stream!` is the easiest way to
///   write one;
/// - an `async fn` whose first argument is a [`StreamContext<T>`]; it pushes
///   items with `ctx.send_yield(v).await` (from as many tasks as it likes:
///   the context is `Clone`) and returns `()` or `Result<(), E>`.
///
/// The stream ends when the function (or its stream) does; an `Err` or a
/// panic reaches the consumer as one `Err` item after the items already
/// sent. Items are sent only as fast as the consumer takes them (see
/// [`StreamCall::window`]).
///
/// ```
/// use futures::Stream;
/// use tractor::StreamContext;
///
/// #[tractor::stream]
/// fn count_to(n: u32) -> impl Stream<Item = u32> {
///     futures::stream::iter(0..n)
/// }
///
/// #[tractor::stream]
/// async fn ticker(every_ms: u64) -> impl Stream<Item = u64> {
///     async_stream::stream! {
///         let mut interval = tokio::time::interval(std::time::Duration::from_millis(every_ms));
///         for tick in 0.. {
///             interval.tick().await;
///             yield tick;
///         }
///     }
/// }
///
/// #[tractor::stream]
/// async fn from_many_tasks(ctx: StreamContext<String>, sources: Vec<String>) -> tractor::Result<()> {
///     let tasks = sources.into_iter().map(|source| {
///         let ctx = ctx.clone();
///         async move { ctx.send_yield(format!("hello from {source}")).await }
///     });
///     futures::future::try_join_all(tasks).await?;
///     Ok(())
/// }
///
/// let call: tractor::StreamCall<u32> = count_to::call(10);
/// ```
pub use tractor_macros::stream;

/// Makes a free `async fn` a context: a typed two-way dialog with its
/// caller, which first hands the caller a value, then streams both ways,
/// then returns.
///
/// The function's first argument is its [`Context<S, I, O>`](Context):
/// - `S` is the value [`ctx.started(v)`](Context::started) hands the
///   caller, as soon as the function is ready;
/// - `I` are the items the caller sends, `O` those the function sends,
///   through [`ctx.open_stream()`](Context::open_stream) (a [`MsgStream`]:
///   a `Stream` of `I`s and a `Sink` of `O`s);
///
/// all three `Serialize + DeserializeOwned + Send + 'static`, `()` for one
/// that carries nothing. The function returns `T` or `Result<T, E>`, as an
/// [`rpc`]: `T` is the dialog's result, an `Err` travels as a
/// [`RemoteActorError`] with `E`'s type name and message (`E: Display`).
///
/// The function stays as it is, callable locally. Beside it appears its
/// stub, an item of the same name and visibility with `NAME` (its wire
/// name) and `call(args..) -> tractor::ContextCall<S, I, O, T>`, taking the
/// arguments after the context, to pass to [`Portal::open_context`]. That
/// gives the caller its [`ContextHandle`] and the started value; the handle
/// opens the caller's side of the stream and waits for the result.
///
/// The rules are those of [`rpc`]: owned arguments with plain names, no
/// generics, no methods; besides, the function must be `async` (its future
/// `Send`) and take exactly one `Context`, first. A type that breaks a rule
/// is reported on that type, by the rule's name (e.g.
/// `context_items_must_be_serializable`).
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use tractor::Context;
///
/// /// Says how many lines it will take, then echoes them upper-cased, and
/// /// returns how many it echoed.
/// #[tractor::context]
/// async fn shout(ctx: Context<usize, String, String>, limit: usize) -> tractor::Result<usize> {
///     ctx.started(limit).await?;
///     let mut stream = ctx.open_stream().await?;
///     let mut echoed = 0;
///     while echoed < limit {
///         let Some(line) = stream.next().await else { break };
///         stream.send(line?.to_uppercase()).await?;
///         echoed += 1;
///     }
///     Ok(echoed)
/// }
///
/// // The caller's side (not run here: it needs an actor to talk to).
/// async fn talk(portal: &tractor::Portal) -> tractor::Result<usize> {
///     let (handle, limit) = portal.open_context(shout::call(2)).await?;
///     let mut stream = handle.open_stream().await?;
///     for line in ["hello", "world"].into_iter().take(limit) {
///         stream.send(line.to_string()).await?;
///         assert_eq!(stream.next().await.transpose()?, Some(line.to_uppercase()));
///     }
///     handle.result().await
/// }
///
/// let call: tractor::ContextCall<usize, String, String, usize> = shout::call(2);
/// assert_eq!(shout::NAME, concat!(module_path!(), "::shout"));
/// assert_eq!(call.name(), shout::NAME);
/// ```
pub use tractor_macros::context;

/// Starts a program as a tree of actors: a shorthand for
/// [`Root::builder()`](Root::builder)`...`[`run`](RootBuilder::run) around
/// the body.
///
/// On `async fn main() -> R` where `R` is `()` or `Result<(), E>`. In a
/// spawned child the attribute turns the process into that child actor (the
/// body never runs there); in the root it finds the registrar or becomes
/// it, then runs the body as the root actor's first task.
///
/// Options, each the [`RootBuilder`] method of the same name:
/// `registrar = "host:port"`, `secret = <expr>` (bytes, computed at start),
/// `worker_threads = <n>`, `start_method = "exec" | "forkserver"`,
/// `loglevel = "info"` (installs [`log::console`]),
/// `enable_modules = [module_path!(), ..]` (modules the root serves),
/// `max_concurrent_calls = <n>`. An option set here wins over its
/// environment variable.
///
/// ```no_run
/// #[tractor::main(loglevel = "info", worker_threads = 2, enable_modules = [module_path!()])]
/// async fn main() -> tractor::Result<()> {
///     println!("I am {}", tractor::current_actor().name());
///     Ok(())
/// }
/// ```
pub use tractor_macros::main;

/// An async test whose process is a root actor with a registrar of its
/// own (on an ephemeral port), so that the tests of one binary may run in
/// parallel.
///
/// Children re-execute the test binary as `--exact <test> --nocapture
/// --include-ignored`, so this works under `cargo test` and
/// `cargo nextest run`, ignored tests included. Options: those of
/// [`main`] but `registrar` (a test always has its own). The function must
/// not also carry `#[test]`: this attribute adds it.
///
/// ```no_run
/// #[tractor::rpc]
/// async fn ping() -> String {
///     "pong".to_string()
/// }
/// # fn main() {}
/// # mod tests {
/// #[tractor::test]
/// async fn pings() -> tractor::Result<()> {
///     tractor::open_nursery(async |n: &tractor::ActorNursery| {
///         let p = n.run_in_actor("ponger", super::ping::call()).await?;
///         assert_eq!(p.result().await?, "pong");
///         Ok(())
///     })
///     .await
/// }
/// # }
/// ```
pub use tractor_macros::test;
