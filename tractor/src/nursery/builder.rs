//! Spawn builders: `n.start_actor(name)` and `n.run_in_actor(name, call)`
//! take options, then `.await` spawns.
//!
//! Spawning starts the process, registers it with the nursery at once (so
//! that whatever happens next, the nursery tears it down), and resolves
//! once the child has connected back and handshaken, which also means it
//! is registered with the registrar.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::launch::{self, MainCall, Options, Recipe};
use super::{ActorNursery, Restart};
use crate::call::{Call, Request, StreamCall};
use crate::error::{Error, Result};
use crate::ipc::credit::Window;
use crate::portal::{Portal, ResultSlot, RunPortal};
use crate::spawn::StartMethod;
use crate::stream::RemoteStream;
use crate::uid::ActorUid;

/// Options for a new actor, then `.await` to spawn it.
///
/// Made by [`ActorNursery::start_actor`] (`K` = [`Daemon`]) and
/// [`ActorNursery::run_in_actor`] (`K` = [`RunIn`]).
#[must_use = "a spawn builder does nothing until awaited"]
pub struct SpawnBuilder<'n, K> {
    nursery: &'n ActorNursery,
    name: String,
    options: Options,
    restart: Option<Restart>,
    /// The first option that could not be applied, reported on `.await`.
    error: Option<Error>,
    kind: K,
}

/// A daemon actor: serves calls until cancelled.
#[derive(Debug)]
pub struct Daemon;

/// An actor that runs one call `C` (and serves others meanwhile).
#[derive(Debug)]
pub struct RunIn<C>(pub(crate) C);

/// Calls that [`ActorNursery::run_in_actor`] can run: a [`Call`] (its
/// result is the value) or a [`StreamCall`] (its result is the
/// [`RemoteStream`]).
pub trait RunTarget: sealed::Sealed {}

impl<T> RunTarget for Call<T> {}
impl<T> RunTarget for StreamCall<T> {}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for crate::call::Call<T> {}
    impl<T> Sealed for crate::call::StreamCall<T> {}
}

impl<'n, K> SpawnBuilder<'n, K> {
    pub(crate) fn new(nursery: &'n ActorNursery, name: String, kind: K) -> Self {
        SpawnBuilder {
            nursery,
            name,
            options: Options::default(),
            restart: None,
            error: None,
            kind,
        }
    }

    /// Lets the actor serve the remote functions of these modules (module
    /// paths as `module_path!()` gives them). An actor serves nothing that
    /// is not enabled; calls to other functions answer `ModuleNotExposed`.
    pub fn enable_modules<I>(mut self, modules: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.options
            .enable_modules
            .extend(modules.into_iter().map(Into::into));
        self
    }

    /// Stores `value` under `key` in the new actor's statespace, read there
    /// with [`Actor::statespace`](crate::Actor::statespace). Repeatable.
    pub fn statespace(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        match postcard::to_allocvec(&value) {
            Ok(bytes) => self.options.statespace.push((key, bytes)),
            Err(err) => {
                let error = Error::codec(format!("statespace value {key:?}"), err);
                self.error.get_or_insert(error);
            }
        }
        self
    }

    /// How to start this actor (and, unless they say otherwise, its own
    /// children); by default this actor's method.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.options.start_method = Some(method);
        self
    }

    /// Worker threads of the new actor's runtime (at least 1). By default
    /// a child gets the tree's child default: 1 (its main thread, see
    /// [`DEFAULT_CHILD_WORKERS`](crate::DEFAULT_CHILD_WORKERS)), or what
    /// the root was given with `worker_threads`. An actor's own children
    /// do not inherit this setting; they get the tree's default too.
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.options.worker_threads = Some(threads.max(1));
        self
    }

    /// How many calls (streams included, for as long as they run) one peer
    /// may have running in the new actor at once (at least 1). Past it the
    /// actor stops reading from that peer until a call ends, so the peer's
    /// socket pushes back. By default this actor's own limit
    /// ([`DEFAULT_MAX_CONCURRENT_CALLS`](crate::DEFAULT_MAX_CONCURRENT_CALLS)
    /// unless the root set another).
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.options.max_concurrent_calls = Some(calls.max(1));
        self
    }

    /// The new actor's log level (a `tracing` filter such as `"debug"`);
    /// by default it inherits this actor's.
    pub fn loglevel(mut self, level: impl Into<String>) -> Self {
        self.options.loglevel = Some(level.into());
        self
    }

    /// Starts the new actor on another host, through the system's OpenSSH
    /// client: `url` is `ssh://[user@]host[:port]`, and `ssh` uses the
    /// user's own config, keys and agent (set
    /// [`SSH_COMMAND_ENV`](crate::SSH_COMMAND_ENV) to run it another
    /// way). The host runs the same executable path as this program
    /// unless [`program`](Self::program) says otherwise: it must be there,
    /// a build of the same program. The spawn spec, with the tree's
    /// secret, goes over the ssh session's standard input, never argv or
    /// the remote environment; the child connects back over TCP, so this
    /// actor must listen where that host can reach it
    /// ([`HOST_ENV`](crate::HOST_ENV)) with TLS (or plain TCP, chosen
    /// explicitly: see [`TRANSPORT_ENV`](crate::TRANSPORT_ENV)). The
    /// child gets this program's transport settings and certificate,
    /// which must therefore name that host too; it listens on `host`.
    ///
    /// From then on it is an ordinary child: the nursery waits for it,
    /// its errors come back, cancelling and restarts work, and it dies
    /// with its ssh session.
    ///
    /// ```no_run
    /// #[tractor::rpc]
    /// async fn hostname() -> String {
    ///     std::fs::read_to_string("/etc/hostname").unwrap_or_default()
    /// }
    ///
    /// # async fn example() -> tractor::Result<()> {
    /// tractor::open_nursery(async |n: &tractor::ActorNursery| {
    ///     let there = n
    ///         .run_in_actor("probe", hostname::call())
    ///         .host("ssh://deploy@10.20.0.2")
    ///         .await?;
    ///     println!("ran on {}", there.result().await?);
    ///     Ok(())
    /// })
    /// .await
    /// # }
    /// ```
    pub fn host(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        match crate::spawn::ssh::SshTarget::parse(&url) {
            Ok(target) => self.options.host = Some(target),
            Err(reason) => {
                let error = Error::Spawn {
                    name: self.name.clone(),
                    reason,
                };
                self.error.get_or_insert(error);
            }
        }
        self
    }

    /// The executable a child placed on another host (see
    /// [`host`](Self::host)) runs there; by default this program's own
    /// path. It must be a build of this program with the same remote
    /// functions. Unused without `host`.
    pub fn program(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.options.program = Some(path.into());
        self
    }

    /// Whether a supervisor restarts this child after it ends (see
    /// [`Restart`]); by default `Permanent` for `start_actor` and
    /// `Temporary` for `run_in_actor`. Only a nursery opened with
    /// [`open_nursery_with`](crate::open_nursery_with) restarts; in a
    /// plain one every failure cancels the nursery whatever this says.
    ///
    /// ```
    /// #[tractor::rpc]
    /// async fn flaky_job() -> u32 {
    ///     7
    /// }
    ///
    /// # async fn example() -> tractor::Result<()> {
    /// let supervisor = tractor::Supervisor::one_for_one();
    /// let seven = tractor::open_nursery_with(supervisor, async |n: &tractor::ActorNursery| {
    ///     // Run again, in a new process, until it succeeds (within the
    ///     // supervisor's restart intensity).
    ///     let job = n
    ///         .run_in_actor("job", flaky_job::call())
    ///         .restart(tractor::Restart::Transient)
    ///         .await?;
    ///     job.result().await
    /// })
    /// .await?;
    /// # let _ = seven;
    /// # Ok(())
    /// # }
    /// ```
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = Some(restart);
        self
    }
}

/// A spawned child, up and adopted by its nursery.
struct Spawned<'n> {
    nursery: &'n ActorNursery,
    child: Arc<crate::children::ChildHandle>,
    recipe: Arc<Recipe>,
    portal: Portal,
    slot: Arc<ResultSlot>,
}

/// A builder's options, apart from what kind of child it spawns.
struct Parts<'n> {
    nursery: &'n ActorNursery,
    name: String,
    options: Options,
    restart: Option<Restart>,
    error: Option<Error>,
}

impl<'n, K> SpawnBuilder<'n, K> {
    fn split(self) -> (Parts<'n>, K) {
        let SpawnBuilder {
            nursery,
            name,
            options,
            restart,
            error,
            kind,
        } = self;
        let parts = Parts {
            nursery,
            name,
            options,
            restart,
            error,
        };
        (parts, kind)
    }
}

impl<'n> Parts<'n> {
    /// Spawns the actor; `main` is what a `run_in_actor` child runs.
    async fn spawn(self, main: Option<MainCall>, default: Restart) -> Result<Spawned<'n>> {
        let Parts {
            nursery,
            name,
            options,
            restart,
            error,
        } = self;
        if let Some(error) = error {
            return Err(error);
        }
        if name.trim().is_empty() {
            return Err(Error::Spawn {
                name,
                reason: "an actor needs a name".into(),
            });
        }
        let recipe = Arc::new(Recipe {
            uid: ActorUid::new(&name),
            options,
            main,
        });
        let inner = nursery.inner();
        let starting = launch::start(inner, &recipe).await?;
        let child = starting.child.clone();
        let slot = Arc::new(ResultSlot::new(child.uid().clone()));
        let result = recipe.main.as_ref().map(|_| slot.clone());
        // Adopted before it connects: whatever happens next, the nursery
        // waits for it.
        let restart = restart.unwrap_or(default);
        let lineage = inner.adopt(child.clone(), recipe.clone(), restart, result);
        let channel = launch::connected(&recipe, starting).await?;
        let actor = inner.actor().clone();
        let portal = match lineage {
            Some(lineage) => {
                lineage.up(channel);
                Portal::following(actor, lineage)
            }
            None => Portal::new(actor, channel),
        };
        Ok(Spawned {
            nursery,
            child,
            recipe,
            portal,
            slot,
        })
    }
}

impl<'n> IntoFuture for SpawnBuilder<'n, Daemon> {
    type Output = Result<Portal>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Portal>> + Send + 'n>>;

    fn into_future(self) -> Self::IntoFuture {
        let (parts, Daemon) = self.split();
        Box::pin(async move {
            let spawned = parts.spawn(None, Restart::Permanent).await?;
            Ok(spawned.portal)
        })
    }
}

impl<'n> Spawned<'n> {
    /// Sends the main call and hands out the portal with its result.
    async fn run<O>(self) -> RunPortal<O> {
        let Spawned {
            nursery,
            child,
            recipe,
            portal,
            slot,
        } = self;
        if let Some(main) = &recipe.main {
            nursery
                .inner()
                .run_main(&child, 0, main, slot.clone())
                .await;
        }
        RunPortal::new(portal, slot)
    }
}

/// The main call a `run_in_actor` child runs, from its request.
fn main_call(request: Request, stream: Option<Window>) -> Result<MainCall> {
    // Arguments that cannot be sent fail before any process starts.
    Ok(MainCall {
        args: request.args?,
        func: request.name,
        timeout: request.timeout,
        inherited: crate::deadline::inherited(),
        stream,
    })
}

impl<'n, T> IntoFuture for SpawnBuilder<'n, RunIn<Call<T>>>
where
    T: DeserializeOwned + Send + 'static,
{
    type Output = Result<RunPortal<T>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<RunPortal<T>>> + Send + 'n>>;

    fn into_future(self) -> Self::IntoFuture {
        let (parts, RunIn(call)) = self.split();
        Box::pin(async move {
            let main = main_call(call.into_request(), None)?;
            Ok(parts
                .spawn(Some(main), Restart::Temporary)
                .await?
                .run()
                .await)
        })
    }
}

impl<'n, T> IntoFuture for SpawnBuilder<'n, RunIn<StreamCall<T>>>
where
    T: DeserializeOwned + Send + 'static,
{
    type Output = Result<RunPortal<RemoteStream<T>>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'n>>;

    fn into_future(self) -> Self::IntoFuture {
        let (parts, RunIn(call)) = self.split();
        Box::pin(async move {
            let (request, window) = call.into_request();
            let main = main_call(request, Some(window))?;
            Ok(parts
                .spawn(Some(main), Restart::Temporary)
                .await?
                .run()
                .await)
        })
    }
}
