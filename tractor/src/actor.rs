//! The actor: one per process (one per `#[tractor::test]` root).
//!
//! It owns the process's identity, the listener its peers dial, the open
//! channels, the calls it is serving and the tasks that supervise its
//! children. All of its tasks run on its own tokio runtime, whose threads
//! (workers and blocking threads alike) know which actor they belong to:
//! that is what [`current_actor`] reads.
//!
//! Cancelling an actor cancels every call it serves (their futures are
//! dropped, which tears down any nursery inside them, gracefully), waits a
//! bounded time for its tasks and children to end, answers whoever asked
//! for the cancellation and lets the process exit.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{self, NONCE, Secret};
use crate::child::ChildHandle;
use crate::discovery::Registrar;
use crate::error::{Error, Result};
use crate::invoke::Outcome;
use crate::ipc::msg::{Handshake, WireError};
use crate::ipc::tls;
use crate::ipc::transport::{self, Listener, Stream};
use crate::ipc::{CallKind, Channel, Inbound, Served, handshake};
use crate::registry;
use crate::spawn::StartMethod;
use crate::spawn::forkserver::ForkServer;
use crate::stream::{Credit, RawContext};
use crate::uid::ActorUid;

/// How long a cancelled actor (and each of its children) gets to wind down
/// before it is killed.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_millis(1000);

thread_local! {
    static CURRENT: RefCell<Option<Actor>> = const { RefCell::new(None) };
}

/// The actor this code runs in.
///
/// Works in every task and blocking thread of an actor (remote functions,
/// the body of `#[tractor::main]`, `spawn_blocking` closures). Threads you
/// start yourself with `std::thread::spawn` are not part of the actor: pass
/// them the [`Actor`] handle instead.
///
/// # Panics
///
/// Outside an actor (no `#[tractor::main]` or `#[tractor::test]`); use
/// [`Actor::try_current`] to check instead.
///
/// ```
/// #[tractor::rpc]
/// fn whoami() -> String {
///     tractor::current_actor().name().to_string()
/// }
/// ```
pub fn current_actor() -> Actor {
    Actor::try_current().expect(
        "tractor::current_actor() called outside an actor: run the program with \
         #[tractor::main] (or the test with #[tractor::test]), and call it from the actor's \
         tasks, not from a thread you spawned yourself",
    )
}

/// A handle on an actor: its identity, configuration and state.
///
/// Cheap to clone, `Send` and `Sync`. Get the current one with
/// [`current_actor`].
#[derive(Clone)]
pub struct Actor(Arc<ActorInner>);

pub(crate) struct ActorInner {
    settings: Settings,
    listen_addr: OnceLock<String>,
    /// This actor's Unix socket, if it could make one.
    local_path: OnceLock<PathBuf>,
    cancel: CancellationToken,
    grace: Mutex<Duration>,
    tasks: TaskTracker,
    expected: Mutex<HashMap<Uuid, Expecting>>,
    peers: Mutex<HashMap<Uuid, Channel>>,
    children: Mutex<HashMap<Uuid, Arc<ChildHandle>>>,
    cancel_acks: Mutex<Vec<(Channel, u64)>>,
    parent: OnceLock<Channel>,
    /// The channel lookups go through (for a registered actor, the one
    /// that keeps it registered).
    registrar_channel: tokio::sync::Mutex<Option<Channel>>,
    registrar: Option<Registrar>,
    /// Started on the first spawn that uses it.
    forkserver: tokio::sync::OnceCell<Arc<ForkServer>>,
}

/// What an actor is told when it starts.
pub(crate) struct Settings {
    pub uid: ActorUid,
    /// Whether this actor is the root of its tree.
    pub is_root: bool,
    pub registrar_addr: String,
    /// The registrar's Unix socket, when it is known to be on this host.
    pub registrar_local: Option<String>,
    pub is_registrar: bool,
    /// Modules whose remote functions this actor serves.
    pub enabled: HashSet<String>,
    pub statespace: HashMap<String, Vec<u8>>,
    /// The arguments that make this executable become a child actor
    /// (empty for a program; `--exact <test> --nocapture` under libtest).
    pub exec_args: Vec<String>,
    /// How this actor starts its children.
    pub start_method: StartMethod,
    /// Worker threads of this actor's runtime (children get as many).
    pub workers: usize,
    /// The tree's secret.
    pub secret: Secret,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Actor {
    pub(crate) fn new(settings: Settings) -> Actor {
        let registrar = settings.is_registrar.then(Registrar::default);
        Actor(Arc::new(ActorInner {
            settings,
            listen_addr: OnceLock::new(),
            local_path: OnceLock::new(),
            cancel: CancellationToken::new(),
            grace: Mutex::new(CANCEL_GRACE),
            tasks: TaskTracker::new(),
            expected: Mutex::default(),
            peers: Mutex::default(),
            children: Mutex::default(),
            cancel_acks: Mutex::default(),
            parent: OnceLock::new(),
            registrar_channel: tokio::sync::Mutex::new(None),
            registrar,
            forkserver: tokio::sync::OnceCell::new(),
        }))
    }

    /// The actor of the calling thread, if it belongs to one.
    ///
    /// ```
    /// assert!(tractor::Actor::try_current().is_none());
    /// ```
    pub fn try_current() -> Option<Actor> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Makes `actor` the calling thread's actor; returns the previous one.
    pub(crate) fn set_current(actor: Option<Actor>) -> Option<Actor> {
        CURRENT.with(|current| std::mem::replace(&mut *current.borrow_mut(), actor))
    }

    /// The current actor, or [`Error::NotInActor`].
    pub(crate) fn current() -> Result<Actor> {
        Actor::try_current().ok_or(Error::NotInActor)
    }

    /// The name this actor was spawned with (`"root"` for a program's root).
    pub fn name(&self) -> &str {
        self.0.settings.uid.name()
    }

    /// This actor's unique identity.
    pub fn uid(&self) -> &ActorUid {
        &self.0.settings.uid
    }

    /// Whether this actor is the root of its tree (the process that ran
    /// `main` or the test), rather than a spawned child.
    pub fn is_root(&self) -> bool {
        self.0.settings.is_root
    }

    /// Whether this actor is the registrar of its tree (the root that found
    /// no registrar running and became one).
    pub fn is_registrar(&self) -> bool {
        self.0.settings.is_registrar
    }

    /// The value stored under `key` by the spawner's
    /// `.statespace(key, value)`, decoded as `T`.
    ///
    /// `None` when there is no such key or the value does not decode as `T`
    /// (read it as the type it was stored as).
    ///
    /// ```
    /// #[tractor::rpc]
    /// fn doggy() -> Option<u32> {
    ///     tractor::current_actor().statespace::<u32>("doggy")
    /// }
    /// ```
    pub fn statespace<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = self.0.settings.statespace.get(key)?;
        match postcard::from_bytes(bytes) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(
                    "statespace key {key:?} does not decode as {}: {err}",
                    std::any::type_name::<T>()
                );
                None
            }
        }
    }

    pub(crate) fn secret(&self) -> &Secret {
        &self.0.settings.secret
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Where this actor accepts connections.
    pub(crate) fn listen_addr(&self) -> &str {
        self.0.listen_addr.get().map_or("", String::as_str)
    }

    /// This actor's Unix socket path, for actors on the same host.
    pub(crate) fn local_path(&self) -> Option<String> {
        self.0
            .local_path
            .get()
            .map(|path| path.to_string_lossy().into_owned())
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.0.tasks
    }

    pub(crate) fn grace(&self) -> Duration {
        *lock(&self.0.grace)
    }

    /// The grace period to give this actor's children when cancelling them:
    /// while this actor is itself being cancelled, half of what it got, so
    /// that a whole subtree winds down within the first grace period.
    pub(crate) fn child_grace(&self) -> Duration {
        if self.is_cancelled() {
            (self.grace() / 2).max(Duration::from_millis(50))
        } else {
            CANCEL_GRACE
        }
    }

    pub(crate) fn registrar(&self) -> Option<&Registrar> {
        self.0.registrar.as_ref()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.cancel.is_cancelled()
    }

    /// Resolves when the actor has been cancelled.
    pub(crate) async fn cancelled(&self) {
        self.0.cancel.cancelled().await
    }

    /// Starts cancelling the actor, giving it `grace` to wind down.
    pub(crate) fn cancel(&self, grace: Duration) {
        if !self.0.cancel.is_cancelled() {
            *lock(&self.0.grace) = grace;
            self.0.cancel.cancel();
        }
    }

    fn handshake(&self, register: bool) -> Handshake {
        let addr = self.0.listen_addr.get().cloned();
        Handshake::new(self.uid().clone(), addr, self.local_path(), register)
    }

    /// Accepts connections on `listener` (and on a Unix socket of its own,
    /// where it can make one) for the rest of the actor's life.
    pub(crate) fn serve(&self, listener: TcpListener) -> Result<()> {
        let addr = listener.local_addr()?.to_string();
        let _ = self.0.listen_addr.set(addr.clone());
        self.accept_loop(listener);
        if let Some((local, path)) = transport::bind_local(&self.uid().uuid().simple().to_string())
        {
            let _ = self.0.local_path.set(path);
            self.accept_loop(local);
        }
        if let Some(registrar) = self.registrar() {
            registrar.register(self.uid().clone(), addr, self.local_path());
        }
        Ok(())
    }

    fn accept_loop(&self, listener: impl Listener) {
        let actor = self.clone();
        tokio::spawn(async move {
            loop {
                match listener.next().await {
                    Ok(stream) => {
                        let actor = actor.clone();
                        tokio::spawn(async move {
                            if let Err(err) = actor.accept(stream).await {
                                tracing::debug!("refused a connection: {err}");
                            }
                        });
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: back off
                        // rather than spin.
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }

    async fn accept(&self, stream: Stream) -> Result<()> {
        let stream = match stream {
            Stream::Tcp(tcp) => tls::transport()?.accepted(tcp).await?,
            other => other,
        };
        let (mut opened, pending) = handshake::accept(stream, &self.0.settings.secret, |peer| {
            let mut expected = lock(&self.0.expected);
            let expecting = expected.get_mut(&peer.uid.uuid())?;
            expecting.challenge.take()
        })
        .await?;
        let peer = opened.peer.clone();
        if peer.register {
            let Some(registrar) = self.registrar() else {
                return Err(Error::Protocol(format!(
                    "actor {} asked to register, but this actor is not a registrar",
                    peer.uid
                )));
            };
            // Registered before we answer: once the peer has our handshake,
            // lookups find it.
            registrar.register(
                peer.uid.clone(),
                peer.addr.clone().unwrap_or_default(),
                peer.local.clone(),
            );
        }
        if let Err(err) = pending
            .finish(&mut opened.stream, &self.handshake(false))
            .await
        {
            if let (true, Some(registrar)) = (peer.register, self.registrar()) {
                registrar.unregister(&peer.uid);
            }
            return Err(err);
        }
        let channel = Channel::start(opened, Arc::new(self.clone()));
        self.add_peer(&channel);
        let expected = lock(&self.0.expected).remove(&peer.uid.uuid());
        if let Some(expected) = expected {
            let _ = expected.channel.send(channel);
        }
        Ok(())
    }

    /// Dials the actor listening at `addr` (or at its Unix socket `local`),
    /// asking it to register us if `register`.
    pub(crate) async fn connect(
        &self,
        addr: &str,
        local: Option<&str>,
        register: bool,
    ) -> Result<Channel> {
        let opened = handshake::dial(
            addr,
            local,
            &self.handshake(register),
            &self.0.settings.secret,
        )
        .await?;
        Ok(self.open(opened))
    }

    /// Handshakes over an already connected stream.
    pub(crate) async fn connect_stream(&self, stream: Stream, register: bool) -> Result<Channel> {
        let opened =
            handshake::over(stream, &self.handshake(register), &self.0.settings.secret).await?;
        Ok(self.open(opened))
    }

    fn open(&self, opened: handshake::Opened) -> Channel {
        let channel = Channel::start(opened, Arc::new(self.clone()));
        self.add_peer(&channel);
        channel
    }

    fn add_peer(&self, channel: &Channel) {
        lock(&self.0.peers).insert(channel.peer().uuid(), channel.clone());
        // The channel may have closed before it was recorded.
        if channel.is_closed() {
            self.forget_peer(channel);
        }
    }

    fn forget_peer(&self, channel: &Channel) {
        let mut peers = lock(&self.0.peers);
        if let Some(known) = peers.get(&channel.peer().uuid()) {
            if known.same(channel) {
                peers.remove(&channel.peer().uuid());
            }
        }
    }

    /// Makes `channel` the link to this actor's parent: when it closes, the
    /// actor cancels itself.
    pub(crate) fn set_parent(&self, channel: Channel) {
        let _ = self.0.parent.set(channel.clone());
        if channel.is_closed() {
            self.cancel(CANCEL_GRACE / 2);
        }
    }

    /// The registrar's Unix socket, if it is on this host and has one.
    pub(crate) async fn registrar_local(&self) -> Option<String> {
        if self.is_registrar() {
            return self.local_path();
        }
        if let Some(local) = &self.0.settings.registrar_local {
            return Some(local.clone());
        }
        let current = self.0.registrar_channel.lock().await;
        current
            .as_ref()
            .and_then(|channel| channel.peer_local().map(str::to_owned))
    }

    /// Remembers `channel` as the way to the registrar.
    pub(crate) async fn set_registrar_channel(&self, channel: Channel) {
        *self.0.registrar_channel.lock().await = Some(channel);
    }

    /// The channel to the registrar, (re)connecting if needed. The registrar
    /// itself talks to itself over a loopback channel like anyone else.
    pub(crate) async fn registrar_channel(&self) -> Result<Channel> {
        let mut current = self.0.registrar_channel.lock().await;
        if let Some(channel) = current.as_ref().filter(|channel| !channel.is_closed()) {
            return Ok(channel.clone());
        }
        let addr = self.0.settings.registrar_addr.clone();
        let local = self.0.settings.registrar_local.clone();
        let channel = self
            .connect(&addr, local.as_deref(), false)
            .await
            .map_err(|err| {
                Error::other(format!(
                    "the registrar at {addr} is unreachable ({err}); is the program that runs it \
                 still up?"
                ))
            })?;
        *current = Some(channel.clone());
        Ok(channel)
    }

    /// A portal to actor `uid` listening at `addr`, over the channel this
    /// actor already has to it if any.
    pub(crate) async fn portal_to(
        &self,
        uid: &ActorUid,
        addr: &str,
        local: Option<&str>,
    ) -> Result<crate::Portal> {
        let known = lock(&self.0.peers)
            .get(&uid.uuid())
            .filter(|channel| !channel.is_closed())
            .cloned();
        let channel = match known {
            Some(channel) => channel,
            None => {
                let channel = self.connect(addr, local, false).await?;
                if channel.peer() != uid {
                    channel.close();
                    return Err(Error::other(format!(
                        "expected actor {uid} at {addr}, found {}; it has exited",
                        channel.peer()
                    )));
                }
                channel
            }
        };
        Ok(crate::Portal::new(self.clone(), channel))
    }

    /// This actor's fork server, started on first use.
    pub(crate) async fn forkserver(&self) -> std::io::Result<Arc<ForkServer>> {
        self.0
            .forkserver
            .get_or_try_init(|| ForkServer::start(&self.0.settings.exec_args))
            .await
            .cloned()
    }

    /// Registers interest in the child `uuid` connecting back; the channel
    /// is delivered once it has handshaken.
    pub(crate) fn expect(&self, uuid: Uuid) -> Result<Expected> {
        let (tx, rx) = oneshot::channel();
        let challenge = auth::nonce()?;
        let expecting = Expecting {
            channel: tx,
            challenge: Some(challenge),
        };
        lock(&self.0.expected).insert(uuid, expecting);
        Ok(Expected {
            actor: self.clone(),
            uuid,
            channel: rx,
            challenge,
        })
    }

    /// A spawned child dials its parent, proving the secret over the
    /// challenge of its spawn spec.
    pub(crate) async fn connect_parent(
        &self,
        addr: &str,
        local: Option<&str>,
        register: bool,
        challenge: &[u8; NONCE],
    ) -> Result<Channel> {
        let ours = self.handshake(register);
        let opened =
            handshake::dial_parent(addr, local, &ours, &self.0.settings.secret, challenge).await?;
        Ok(self.open(opened))
    }

    pub(crate) fn add_child(&self, child: Arc<ChildHandle>) {
        lock(&self.0.children).insert(child.uid().uuid(), child);
    }

    pub(crate) fn remove_child(&self, uuid: Uuid) {
        lock(&self.0.children).remove(&uuid);
    }

    pub(crate) fn child(&self, uuid: Uuid) -> Option<Arc<ChildHandle>> {
        lock(&self.0.children).get(&uuid).cloned()
    }

    /// Kills every child at once (SIGKILL), without waiting: the last
    /// resort of a program told twice to stop.
    pub(crate) fn kill_children_now(&self) {
        for child in lock(&self.0.children).values() {
            child.kill_now();
        }
    }

    /// The end of the actor's life: cancel everything it serves, wait
    /// (three quarters of the grace period at most) for its tasks and
    /// children, kill what is left, then answer whoever asked for the
    /// cancellation, all within the grace period.
    pub(crate) async fn finish(&self) {
        self.cancel(self.grace());
        let grace = self.grace();
        self.0.tasks.close();
        if tokio::time::timeout(grace * 3 / 4, self.0.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "tasks still running after {:?}; ending anyway",
                grace * 3 / 4
            );
        }
        let children: Vec<_> = lock(&self.0.children).values().cloned().collect();
        for child in &children {
            child.kill();
        }
        let reaped = futures::future::join_all(children.iter().map(|child| child.exited()));
        let _ = tokio::time::timeout(grace / 4, reaped).await;
        if let Some(server) = self.0.forkserver.get() {
            let _ = tokio::time::timeout(grace / 4, server.shut_down()).await;
        }
        if let Some(path) = self.0.local_path.get() {
            let _ = std::fs::remove_file(path);
        }
        let acks = std::mem::take(&mut *lock(&self.0.cancel_acks));
        for (channel, id) in &acks {
            channel.send_return(*id, &[]);
        }
        let peers: Vec<_> = lock(&self.0.peers).values().cloned().collect();
        let flushes = peers.iter().map(|peer| {
            peer.close();
            peer.flushed()
        });
        let _ = tokio::time::timeout(grace, futures::future::join_all(flushes)).await;
    }

    /// Whether this actor serves remote functions of `module`.
    fn exposes(&self, module: &str) -> bool {
        self.0.settings.enabled.contains(module)
            || module == "tractor"
            || module.starts_with("tractor::")
    }

    fn serve_call(&self, channel: &Channel, id: u64, func: &str, kind: CallKind, args: Bytes) {
        let me = self.uid();
        let Some(entry) = registry::lookup(func) else {
            let message = format!(
                "actor {me} has no remote function `{func}`: is the crate that defines it \
                 linked into this executable?"
            );
            channel.send_error(id, &foreign("NoSuchFunction", message, me));
            return;
        };
        if !self.exposes(entry.module()) {
            let message = format!(
                "`{func}` is not exposed by actor {me}: its module `{module}` is not enabled; \
                 spawn the actor with .enable_modules([\"{module}\"])",
                module = entry.module()
            );
            channel.send_error(id, &foreign("ModuleNotExposed", message, me));
            return;
        }
        if self.is_cancelled() {
            channel.send_error(id, &WireError::Cancelled);
            return;
        }
        let token = self.0.cancel.child_token();
        let stream = match kind {
            CallKind::Unary => None,
            CallKind::Stream { window } => Some(RawContext {
                channel: channel.clone(),
                id,
                credit: Arc::new(Credit::new(window)),
            }),
        };
        let served = Served {
            token: token.clone(),
            credit: stream.as_ref().map(|stream| stream.credit.clone()),
        };
        if !channel.serve(id, served) {
            return;
        }
        let actor = self.clone();
        let channel = channel.clone();
        let span = tracing::info_span!("rpc", actor = %self.uid(), func = entry.name(), id);
        self.0.tasks.spawn(
            async move {
                let outcome = tokio::select! {
                    biased;
                    () = token.cancelled() => None,
                    outcome = entry.invoke(&args).run(entry.name(), stream) => Some(outcome),
                };
                channel.served(id);
                match outcome {
                    Some(Outcome::Value(value)) => channel.send_return(id, &value),
                    Some(Outcome::Ended) => channel.send_stop(id),
                    Some(Outcome::Failed(failure)) => {
                        channel.send_error(id, &failure.to_wire(actor.uid()))
                    }
                    None if actor.is_cancelled() => channel.send_error(id, &WireError::Cancelled),
                    // The caller gave up: nobody awaits an answer.
                    None => {}
                }
            }
            .instrument(span),
        );
    }
}

fn foreign(type_name: &str, message: String, me: &ActorUid) -> WireError {
    WireError::Remote(crate::error::RemoteActorError::new(
        type_name,
        message,
        me.clone(),
    ))
}

impl Inbound for Actor {
    fn call(&self, channel: &Channel, id: u64, func: &str, kind: CallKind, args: Bytes) {
        self.serve_call(channel, id, func, kind, args);
    }

    fn cancel_actor(&self, channel: &Channel, id: u64, grace: Duration) {
        if self.0.settings.is_root {
            let message = format!(
                "actor {} is a root actor and is not cancelled remotely; stop its program \
                 instead",
                self.uid()
            );
            channel.send_error(id, &foreign("NotCancellable", message, self.uid()));
            return;
        }
        tracing::debug!(by = %channel.peer(), ?grace, "cancel requested");
        lock(&self.0.cancel_acks).push((channel.clone(), id));
        self.cancel(grace);
    }

    fn closed(&self, channel: &Channel) {
        self.forget_peer(channel);
        if channel.peer_registers() {
            if let Some(registrar) = self.registrar() {
                registrar.unregister(channel.peer());
            }
        }
        if self
            .0
            .parent
            .get()
            .is_some_and(|parent| parent.same(channel))
        {
            tracing::debug!("parent channel closed: cancelling");
            self.cancel(CANCEL_GRACE / 2);
        }
    }
}

/// The parent's side of a child it is waiting for.
struct Expecting {
    channel: oneshot::Sender<Channel>,
    /// Single-use: the child proves the secret over it in its hello.
    challenge: Option<[u8; NONCE]>,
}

/// A child we are waiting for; dropping it forgets the expectation.
pub(crate) struct Expected {
    actor: Actor,
    uuid: Uuid,
    pub(crate) channel: oneshot::Receiver<Channel>,
    /// Goes in the child's spawn spec.
    pub(crate) challenge: [u8; NONCE],
}

impl Drop for Expected {
    fn drop(&mut self) {
        lock(&self.actor.0.expected).remove(&self.uuid);
    }
}
