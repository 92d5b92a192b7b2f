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
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ActorNursery;
use crate::call::{Call, Request, StreamCall};
use crate::children::ChildHandle;
use crate::error::{Error, Result};
use crate::ipc::Channel;
use crate::portal::{Portal, ResultSlot, RunPortal};
use crate::spawn::{SpawnSpec, StartMethod};
use crate::stream::RemoteStream;
use crate::uid::ActorUid;

/// How long a new child has to connect back.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Options for a new actor, then `.await` to spawn it.
///
/// Made by [`ActorNursery::start_actor`] (`K` = [`Daemon`]) and
/// [`ActorNursery::run_in_actor`] (`K` = [`RunIn`]).
#[must_use = "a spawn builder does nothing until awaited"]
pub struct SpawnBuilder<'n, K> {
    nursery: &'n ActorNursery,
    name: String,
    options: Options,
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

#[derive(Default)]
struct Options {
    enable_modules: Vec<String>,
    statespace: Vec<(String, Vec<u8>)>,
    loglevel: Option<String>,
    start_method: Option<StartMethod>,
    worker_threads: Option<usize>,
    max_concurrent_calls: Option<usize>,
    /// The first option that could not be applied, reported on `.await`.
    error: Option<Error>,
}

impl<'n, K> SpawnBuilder<'n, K> {
    pub(crate) fn new(nursery: &'n ActorNursery, name: String, kind: K) -> Self {
        SpawnBuilder {
            nursery,
            name,
            options: Options::default(),
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
                self.options.error.get_or_insert(error);
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
    /// a child gets the tree's child default: 2, or what the root was given
    /// with `worker_threads`. An actor's own children do not inherit this
    /// setting; they get the tree's default too.
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
}

/// Spawns the actor `name`; `main` names the call a `run_in_actor` child
/// will run (its module gets enabled).
async fn spawn(
    nursery: &ActorNursery,
    name: String,
    mut options: Options,
    main: Option<&str>,
) -> Result<(Arc<ChildHandle>, Channel, Arc<ResultSlot>)> {
    let fail = |reason: String| Error::Spawn {
        name: name.clone(),
        reason,
    };
    if let Some(error) = options.error.take() {
        return Err(error);
    }
    if name.trim().is_empty() {
        return Err(fail("an actor needs a name".into()));
    }
    let inner = nursery.inner();
    let actor = inner.actor();
    let uid = ActorUid::new(&name);
    if let Some(main) = main {
        options
            .enable_modules
            .push(crate::registry::module_of(main).to_owned());
    }
    let start_method = options
        .start_method
        .unwrap_or(actor.settings().start_method);
    let children = actor.children();
    let mut expected = children.expect(uid.uuid())?;
    let settings = actor.settings();
    let connections = actor.connections();
    let spec = SpawnSpec {
        challenge: expected.challenge,
        workers: options.worker_threads.unwrap_or(settings.child_workers),
        child_workers: settings.child_workers,
        start_method,
        secret: connections.secret().clone(),
        uid,
        parent: actor.uid().clone(),
        parent_addr: connections.listen_addr().map(str::to_owned),
        parent_pid: std::process::id(),
        registrar_addr: actor.registrar_addr().to_owned(),
        parent_is_registrar: actor.is_registrar(),
        enable_modules: options.enable_modules,
        statespace: options.statespace,
        loglevel: options.loglevel.or_else(crate::log::inherited_level),
        max_concurrent_calls: options
            .max_concurrent_calls
            .unwrap_or(settings.max_concurrent_calls),
        exec_args: settings.exec_args.clone(),
    };
    let child = children.start(&spec, start_method).await.map_err(|err| {
        fail(format!(
            "could not start the process ({start_method}): {err}"
        ))
    })?;
    let slot = Arc::new(ResultSlot::new(child.uid().clone()));
    inner.adopt(child.clone(), main.map(|_| slot.clone()));

    // Until the child is connected, dropping this future or failing kills
    // it (its exit is then expected, not an error).
    let mut abandon = KillOnDrop(Some(child.clone()));
    let channel = tokio::select! {
        channel = &mut expected.channel => channel.map_err(|_| fail("this actor is shutting down".into()))?,
        status = child.exited() => {
            return Err(fail(format!(
                "the process exited ({status}) before connecting back; if this is a test, \
                 is it a #[tractor::test]?"
            )));
        }
        () = tokio::time::sleep(SPAWN_TIMEOUT) => {
            return Err(fail(format!("no connection back within {SPAWN_TIMEOUT:?}")));
        }
    };
    abandon.0 = None;
    tracing::info!(actor = %child.uid(), pid = child.pid(), "spawned");
    child.set_channel(channel.clone());
    Ok((child, channel, slot))
}

struct KillOnDrop(Option<Arc<ChildHandle>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            child.kill();
        }
    }
}

impl<'n> IntoFuture for SpawnBuilder<'n, Daemon> {
    type Output = Result<Portal>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Portal>> + Send + 'n>>;

    fn into_future(self) -> Self::IntoFuture {
        let SpawnBuilder {
            nursery,
            name,
            options,
            ..
        } = self;
        Box::pin(async move {
            let (_, channel, _) = spawn(nursery, name, options, None).await?;
            Ok(Portal::new(nursery.inner().actor().clone(), channel))
        })
    }
}

/// A `run_in_actor` child, up and ready for its main call.
struct Main<'n> {
    nursery: &'n ActorNursery,
    child: Arc<ChildHandle>,
    channel: Channel,
    slot: Arc<ResultSlot>,
    func: std::borrow::Cow<'static, str>,
    args: Vec<u8>,
    /// When the main call must have answered (its first item, for a
    /// stream); taken when the call was made.
    deadline: Option<tokio::time::Instant>,
}

impl Main<'_> {
    fn portal<O>(self) -> RunPortal<O> {
        let actor = self.nursery.inner().actor().clone();
        RunPortal::new(Portal::new(actor, self.channel), self.slot)
    }
}

async fn spawn_main<'n>(
    nursery: &'n ActorNursery,
    name: String,
    options: Options,
    request: Request,
) -> Result<Main<'n>> {
    // Arguments that cannot be sent fail before any process starts.
    let args = request.args?;
    let timeout = request.timeout;
    let (child, channel, slot) = spawn(nursery, name, options, Some(&request.name)).await?;
    Ok(Main {
        nursery,
        child,
        channel,
        slot,
        func: request.name,
        args,
        deadline: crate::deadline::for_call(timeout),
    })
}

impl<'n, T> IntoFuture for SpawnBuilder<'n, RunIn<Call<T>>>
where
    T: DeserializeOwned + Send + 'static,
{
    type Output = Result<RunPortal<T>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<RunPortal<T>>> + Send + 'n>>;

    fn into_future(self) -> Self::IntoFuture {
        let SpawnBuilder {
            nursery,
            name,
            options,
            kind: RunIn(call),
        } = self;
        Box::pin(async move {
            let main = spawn_main(nursery, name, options, call.into_request()).await?;
            let inner = nursery.inner();
            inner
                .run_main(
                    &main.child,
                    &main.func,
                    &main.args,
                    main.deadline,
                    main.slot.clone(),
                )
                .await;
            Ok(main.portal())
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
        let SpawnBuilder {
            nursery,
            name,
            options,
            kind: RunIn(call),
        } = self;
        Box::pin(async move {
            let (request, window) = call.into_request();
            let main = spawn_main(nursery, name, options, request).await?;
            let inner = nursery.inner();
            inner
                .run_main_stream(
                    &main.child,
                    &main.func,
                    &main.args,
                    window,
                    main.deadline,
                    main.slot.clone(),
                )
                .await;
            Ok(main.portal())
        })
    }
}
