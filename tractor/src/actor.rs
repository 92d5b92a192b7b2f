//! The actor: one per process (one per `#[tractor::test]` root), a thin
//! facade over the services that do its work.
//!
//! ```text
//!   actor (identity, shutdown, wiring)
//!     |-- connections  listeners, the peer table, dialing
//!     |-- server       the calls peers make into this actor
//!     |-- children     spawned processes: expected, live, reaped
//!     `-- registrar    the table (in the registrar actor) and the link to it
//! ```
//!
//! The services never call back up into the actor or into one another:
//! what happens on a channel (a call, a cancel request, the channel
//! closing) arrives here, through [`Inbound`], and is handed to the service
//! concerned; a reaped child is reported to the registrar by the hook the
//! actor gave the children service. Shutdown has one owner, this module,
//! and one plan, the [`Budget`] made when the actor is cancelled.
//!
//! All of an actor's tasks run on its own tokio runtime, whose threads
//! (workers and blocking threads alike) know which actor they belong to:
//! that is what [`current_actor`] reads.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{NONCE, Secret};
use crate::budget::{Budget, DEFAULT_GRACE};
use crate::children::{ChildHandle, Children};
use crate::connections::Connections;
use crate::error::{Error, Result};
use crate::ipc::channel::ReservedCall;
use crate::ipc::handshake::Opened;
use crate::ipc::handshake::Refusal;
use crate::ipc::limits::Admission;
use crate::ipc::msg::Handshake;
use crate::ipc::transport::{Stream, Target};
use crate::ipc::{Channel, Inbound, Incoming};
use crate::registrar::{Registrar, RegistrarLink};
use crate::server::{Server, foreign};
use crate::spawn::StartMethod;
use crate::uid::ActorUid;

thread_local! {
    static CURRENT: RefCell<Option<Actor>> = const { RefCell::new(None) };
}

/// The actor of a child process: a child is one actor for its whole life,
/// so every thread of it belongs to that actor (a spare's runtime threads
/// start before it knows which actor it will be).
static PROCESS_ACTOR: std::sync::OnceLock<Actor> = std::sync::OnceLock::new();

/// The actor this code runs in.
///
/// Works in every task and blocking thread of an actor (remote functions,
/// the body of `#[tractor::main]`, `spawn_blocking` closures), and in a
/// spawned child, whose process is that one actor, on every thread. In the
/// root's process, threads you start yourself with `std::thread::spawn`
/// are not part of the actor: pass them the [`Actor`] handle instead.
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

/// How an opening came to an actor.
enum Came {
    /// Someone dialed it.
    Dialing,
    /// A new child opens over its link, its main call (if the spawn sent
    /// it over the link) awaited as [`ReservedCall`].
    Linked(Option<ReservedCall>),
}

/// How often an actor tries again to register with a registrar it lost
/// or could not reach.
const REREGISTER: Duration = Duration::from_secs(1);

struct ActorInner {
    settings: Settings,
    /// Cancelled once, when the actor starts winding down.
    cancel: CancellationToken,
    /// The plan of that wind-down, made when it starts.
    budget: OnceLock<Budget>,
    tasks: TaskTracker,
    connections: Connections,
    server: Server,
    children: Children,
    registrar: Option<Arc<Registrar>>,
    link: RegistrarLink,
    /// The tree's other registrars, if it has several: registered with
    /// too, and asked in turn.
    others: Vec<RegistrarLink>,
    parent: OnceLock<Channel>,
    /// Who the parent is, known before its channel is: a cancel request
    /// may be read on that channel before `parent` is set.
    parent_uuid: OnceLock<uuid::Uuid>,
    /// The parent asked this actor to cancel (so a registrar parent has
    /// unregistered it already).
    cancelled_by_parent: std::sync::atomic::AtomicBool,
    /// A supervised nursery of this actor gave up: the actor ends as a
    /// failure (see [`Actor::escalate`]).
    escalated: std::sync::atomic::AtomicBool,
    /// The channel to the parent closed without the parent asking this
    /// actor to go: it ends as a failure.
    parent_lost: std::sync::atomic::AtomicBool,
}

/// What an actor is told when it starts.
pub(crate) struct Settings {
    pub uid: ActorUid,
    /// Whether this actor is the root of its tree.
    pub is_root: bool,
    /// The registrar's address (see `Target::Registrar`).
    pub registrar_addr: String,
    /// The registrar is this actor's parent (its registration is the
    /// parent channel).
    pub registrar_is_parent: bool,
    pub is_registrar: bool,
    /// Modules whose remote functions this actor serves.
    pub enabled: HashSet<String>,
    pub statespace: HashMap<String, Vec<u8>>,
    /// The arguments that make this executable become a child actor
    /// (empty for a program; `--exact <test> ..` under libtest).
    pub exec_args: Vec<String>,
    /// How this actor starts its children.
    pub start_method: StartMethod,
    /// Worker threads of this actor's runtime.
    pub workers: usize,
    /// Worker threads a child of this actor gets unless its spawn says.
    pub child_workers: usize,
    /// Calls one peer may have running in this actor at once.
    pub max_concurrent_calls: usize,
    /// The tree's secret.
    pub secret: Secret,
    /// How channels to other hosts tell a silent peer (the tree's).
    pub heartbeat: crate::ipc::heartbeat::Heartbeat,
    /// The tree's registrars beside `registrar_addr`, if it has several.
    pub other_registrars: Vec<String>,
}

impl Actor {
    pub(crate) fn new(settings: Settings) -> Actor {
        let registrar = settings
            .is_registrar
            .then(|| Arc::new(Registrar::default()));
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let reaped = registrar.clone();
        let children = Children::new(
            tasks.clone(),
            settings.exec_args.clone(),
            Box::new(move |uid| {
                // A registrar parent knows first that its child is going.
                if let Some(registrar) = &reaped {
                    registrar.unregister(uid);
                }
            }),
        );
        Actor(Arc::new(ActorInner {
            connections: Connections::new(settings.uid.clone(), settings.secret.clone()),
            server: Server::new(
                settings.uid.clone(),
                settings.enabled.clone(),
                cancel.clone(),
                tasks.clone(),
            ),
            link: RegistrarLink::new(
                settings.registrar_addr.clone(),
                settings.registrar_is_parent,
            ),
            others: settings
                .other_registrars
                .iter()
                .map(|addr| RegistrarLink::new(addr.clone(), false))
                .collect(),
            children,
            registrar,
            cancel,
            budget: OnceLock::new(),
            tasks,
            parent: OnceLock::new(),
            parent_uuid: OnceLock::new(),
            cancelled_by_parent: std::sync::atomic::AtomicBool::new(false),
            escalated: std::sync::atomic::AtomicBool::new(false),
            parent_lost: std::sync::atomic::AtomicBool::new(false),
            settings,
        }))
    }

    /// The actor of the calling thread, if it belongs to one.
    ///
    /// ```
    /// assert!(tractor::Actor::try_current().is_none());
    /// ```
    pub fn try_current() -> Option<Actor> {
        CURRENT
            .with(|current| current.borrow().clone())
            .or_else(|| PROCESS_ACTOR.get().cloned())
    }

    /// Makes `actor` the actor of every thread of this process (a child's
    /// one actor), and labels their log lines with it.
    pub(crate) fn set_process_actor(actor: Actor) {
        crate::log::set_process_label(actor.uid().to_string().into());
        let _ = PROCESS_ACTOR.set(actor);
    }

    /// Makes `actor` the calling thread's actor (and labels the thread's
    /// log lines with it); returns the previous one.
    pub(crate) fn set_current(actor: Option<Actor>) -> Option<Actor> {
        crate::log::set_thread_label(actor.as_ref().map(|actor| actor.uid().to_string().into()));
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

    /// The Unix socket this actor listens on, where actors of this host
    /// (and this user) reach it; `None` if its transport has none.
    ///
    /// ```
    /// #[tractor::rpc]
    /// fn socket() -> Option<String> {
    ///     let path = tractor::current_actor().local_socket()?;
    ///     Some(path.display().to_string())
    /// }
    /// ```
    pub fn local_socket(&self) -> Option<std::path::PathBuf> {
        crate::ipc::local::existing_actor_socket(self.uid().uuid())
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

    pub(crate) fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub(crate) fn connections(&self) -> &Connections {
        &self.0.connections
    }

    pub(crate) fn children(&self) -> &Children {
        &self.0.children
    }

    pub(crate) fn registrar(&self) -> Option<&Registrar> {
        self.0.registrar.as_deref()
    }

    /// Tasks the actor waits for before it exits.
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.0.tasks
    }

    /// Resolves when the actor has been cancelled.
    pub(crate) async fn cancelled(&self) {
        self.0.cancel.cancelled().await
    }

    /// Starts cancelling the actor, giving it `grace` to wind down (a
    /// later request keeps the first plan).
    pub(crate) fn cancel(&self, grace: Duration) {
        let _ = self.0.budget.set(Budget::new(grace));
        self.0.cancel.cancel();
    }

    /// A supervised nursery of this actor gave up with `error`: unless
    /// this is the root (whose program gets the error), the actor winds
    /// down and exits as a failure, so that its parent's supervisor or
    /// nursery handles it in turn. The calls it serves (the one that ran
    /// the nursery included) answer first.
    pub(crate) fn escalate(&self, error: &Error) {
        if self.is_root() {
            return;
        }
        tracing::error!(
            "{error}; failing actor {} so that its parent handles it",
            self.uid()
        );
        self.0
            .escalated
            .store(true, std::sync::atomic::Ordering::Release);
        self.cancel(DEFAULT_GRACE / 2);
    }

    /// Whether the actor ends as a failure (see [`escalate`](Self::escalate)).
    pub(crate) fn has_escalated(&self) -> bool {
        self.0.escalated.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the channel to the parent closed unasked.
    pub(crate) fn lost_its_parent(&self) -> bool {
        self.0
            .parent_lost
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The grace to give a child being cancelled now: while this actor is
    /// itself winding down, what its budget leaves for children; otherwise
    /// the default.
    pub(crate) fn child_grace(&self) -> Duration {
        match self.0.budget.get() {
            Some(budget) => budget.child_grace(),
            None => DEFAULT_GRACE,
        }
    }

    /// Accepts connections for the rest of the actor's life: on its own
    /// Unix socket (`prebound`, if a spare bound it ahead), on `tcp` if it
    /// has a TCP transport, and on the registrar's `rendezvous` socket.
    pub(crate) fn serve(
        &self,
        tcp: Option<TcpListener>,
        rendezvous: Option<(std::os::unix::net::UnixListener, std::path::PathBuf)>,
        prebound: Option<crate::ipc::local::Unplaced>,
    ) -> Result<()> {
        let actor = self.clone();
        self.0
            .connections
            .listen(tcp, rendezvous, prebound, move |stream| {
                let actor = actor.clone();
                async move { actor.accept(stream, Came::Dialing).await }
            })?;
        if let Some(registrar) = self.registrar() {
            registrar.register(
                self.uid().clone(),
                self.0.connections.listen_addr().map(str::to_owned),
            );
        }
        Ok(())
    }

    /// The opening a new child makes over `link`, the socket it was
    /// started with (see `Started::link`), accepted as if it had dialed
    /// us: the same checks, but no welcome (the link is private both ways:
    /// see `handshake`). `main`: the child's main call already went over
    /// the link, and its answer is awaited under
    /// [`MAIN_CALL`](crate::ipc::channel::MAIN_CALL) from the moment the
    /// channel opens. The spawn that waits for the child drives this, so
    /// that what follows the opening runs on the thread that read the
    /// child's hello, with no hand-over to another worker in between; and
    /// that spawn's deadline bounds it. It has no timer of its own: a
    /// timer armed while no other is pending wakes the runtime's driver
    /// once more for nothing, and the spawn's own deadline already ends a
    /// stalled opening (with the child killed).
    pub(crate) fn open_link(
        &self,
        link: crate::ipc::unix_stream::LocalStream,
        main: Option<ReservedCall>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let actor = self.clone();
        async move {
            let opened = actor.accept(Stream::Unix(link), Came::Linked(main));
            if let Err(err) = opened.await {
                tracing::debug!("refused a new child's opening over its link: {err}");
            }
        }
    }

    /// Accepts an opening on `stream`, which `came` as it says.
    async fn accept(&self, stream: Stream, came: Came) -> Result<()> {
        let linked = matches!(came, Came::Linked(_));
        let children = &self.0.children;
        let connections = &self.0.connections;
        let (mut opened, pending) = connections
            .accept(stream, |peer| children.challenge(peer.uid.uuid()))
            .await?;
        let peer = opened.peer.uid.clone();
        let registrar = self.registrar();
        // Authority by role, not by claim: only the spawn challenge opens
        // a channel under a spawning child's uuid, and no one takes over
        // the place of an actor that has a live channel here.
        let claim = connections.claim(peer.uuid());
        let refusal = if claim.is_none() {
            Some(Refusal::UidInUse)
        } else if pending.is_spawn() {
            (!children.take_challenge(peer.uuid())).then_some(Refusal::NotExpected)
        } else if linked {
            // Only a child proving itself over its challenge opens a link.
            Some(Refusal::NotExpected)
        } else if children.is_expected(peer.uuid()) {
            Some(Refusal::UidInUse)
        } else if opened.peer.register && registrar.is_none() {
            Some(Refusal::NotRegistrar)
        } else {
            None
        };
        if let Some(why) = refusal {
            // A linked child reads no opening frame after its hello: it
            // hears the link close.
            if !linked {
                pending.refuse(&mut opened.stream, why).await;
            }
            return Err(Error::Protocol(format!(
                "refused actor {peer}'s opening: {why:?}"
            )));
        }
        // Registered before we answer: once the peer has our handshake,
        // lookups find it.
        if let Some(registrar) = registrar {
            registrar.introduced(&opened.peer);
        }
        let spawned = pending.is_spawn();
        let ours = connections.introduction(Some(peer.uuid()), false);
        // A linked child awaits no welcome; a dialing child's waits in
        // its channel's outbox, to leave in one write with the first call
        // its spawn makes (the child wakes once for both); anyone else's
        // goes now.
        let welcome = async {
            if linked {
                return Ok(Vec::new());
            }
            let welcome = pending.welcome(&ours)?;
            if spawned {
                return Ok(welcome);
            }
            opened.stream.write_all(&welcome).await?;
            Ok::<_, Error>(Vec::new())
        };
        let welcome = match welcome.await {
            Ok(welcome) => welcome,
            Err(err) => {
                if let (true, Some(registrar)) = (opened.peer.register, registrar) {
                    registrar.unregister(&peer);
                }
                return Err(err);
            }
        };
        let main = match came {
            Came::Linked(main) => main,
            Came::Dialing => None,
        };
        let channel = self.open_sending(opened, &welcome, main);
        drop(claim);
        if spawned {
            children.connected(channel);
        }
        Ok(())
    }

    fn open(&self, opened: Opened) -> Channel {
        self.open_sending(opened, &[], None)
    }

    /// [`open`](Self::open), with `first` the first bytes the channel
    /// writes, and `main` a call already sent to the peer, awaited from
    /// the start.
    fn open_sending(&self, opened: Opened, first: &[u8], main: Option<ReservedCall>) -> Channel {
        let channel = Channel::start(
            opened,
            first,
            main,
            Arc::new(self.clone()),
            self.0.settings.max_concurrent_calls,
            self.0.settings.heartbeat,
        );
        self.0.connections.add_peer(&channel);
        channel
    }

    /// Dials `target`, asking it to register us if `register`.
    pub(crate) async fn connect(&self, target: Target<'_>, register: bool) -> Result<Channel> {
        let opened = self.0.connections.dial(target, register, None).await?;
        Ok(self.open(opened))
    }

    /// A spawned child dials its parent, proving the secret over the
    /// challenge of its spawn spec; or, `linked` to it, opens over the
    /// link it was started with, the parent being the one it introduces
    /// (see `handshake`).
    pub(crate) async fn connect_parent(
        &self,
        target: Target<'_>,
        linked: Option<(std::os::fd::OwnedFd, Handshake)>,
        register: bool,
        challenge: &[u8; NONCE],
    ) -> Result<Channel> {
        if let Target::Actor { uuid, .. } = target {
            let _ = self.0.parent_uuid.set(uuid);
        }
        let connections = &self.0.connections;
        let opened = match linked {
            Some((link, parent)) => {
                connections
                    .open_over(link, target, register, challenge, &parent)
                    .await?
            }
            None => connections.dial(target, register, Some(challenge)).await?,
        };
        Ok(self.open(opened))
    }

    /// The channel to actor `uid` (at TCP address `addr` if it is on
    /// another host): the one this actor already has to it, or a new one.
    pub(crate) async fn channel_to(&self, uid: &ActorUid, addr: Option<&str>) -> Result<Channel> {
        let connections = &self.0.connections;
        if let Some(channel) = connections.peer(uid.uuid()) {
            return Ok(channel);
        }
        let unreachable = |reason: String| Error::Unreachable {
            actor: uid.clone(),
            reason,
        };
        let target = Target::Actor {
            uuid: uid.uuid(),
            addr,
        };
        let channel = match self.connect(target, false).await {
            Ok(channel) => channel,
            Err(err) => {
                // It dialed us at the same time, and that channel won.
                if let Some(channel) = connections.peer(uid.uuid()) {
                    return Ok(channel);
                }
                if connections.is_claimed(uid.uuid()) {
                    if let Some(channel) = connections.wait_for_peer(uid.uuid()).await {
                        return Ok(channel);
                    }
                }
                return Err(match err {
                    // Refused, reset, gone mid-opening: it is not there any
                    // more.
                    Error::Io(err) => unreachable(err.to_string()),
                    err => err,
                });
            }
        };
        if channel.peer() != uid {
            channel.close();
            return Err(unreachable(format!(
                "{} is now actor {}; {uid} has exited",
                target.describe(),
                channel.peer()
            )));
        }
        Ok(channel)
    }

    /// Makes `channel` the link to this actor's parent: when it closes, the
    /// actor cancels itself.
    pub(crate) fn set_parent(&self, channel: Channel) {
        let _ = self.0.parent.set(channel.clone());
        if channel.is_closed() {
            self.cancel(DEFAULT_GRACE / 2);
        }
    }

    fn is_parent(&self, channel: &Channel) -> bool {
        match self.0.parent.get() {
            Some(parent) => parent.same(channel),
            // Still being connected: the channel's peer was proven (one
            // live channel per uuid), so its uuid says who it is.
            None => self
                .0
                .parent_uuid
                .get()
                .is_some_and(|uuid| *uuid == channel.peer().uuid()),
        }
    }

    /// The registrar's address.
    pub(crate) fn registrar_addr(&self) -> &str {
        self.0.link.addr()
    }

    /// The addresses of the tree's other registrars.
    pub(crate) fn other_registrars(&self) -> &[String] {
        &self.0.settings.other_registrars
    }

    /// How many registrars the tree has.
    pub(crate) fn registrar_count(&self) -> usize {
        1 + self.0.others.len()
    }

    /// Keeps this actor registered with every registrar it is not
    /// registered with through its parent, dialing again (every
    /// [`REREGISTER`]) whenever a registration is lost or could not be
    /// made, until the actor winds down. Call once its first registration
    /// (if any) is made.
    pub(crate) fn keep_registered(&self) {
        let primary_kept = !self.0.settings.registrar_is_parent && !self.is_registrar();
        let links = (0..self.registrar_count()).filter(|&i| i > 0 || primary_kept);
        for index in links {
            let actor = self.clone();
            self.0.tasks.spawn(async move {
                tokio::select! {
                    () = actor.keep_registered_with(index) => {}
                    () = actor.cancelled() => {}
                }
            });
        }
    }

    fn registrar_link(&self, index: usize) -> &RegistrarLink {
        match index {
            0 => &self.0.link,
            other => &self.0.others[other - 1],
        }
    }

    async fn keep_registered_with(&self, index: usize) {
        let link = self.registrar_link(index);
        let mut registration = link.current().await;
        let mut first = registration.is_none();
        loop {
            if let Some(channel) = &registration {
                channel.closed().await;
                tracing::warn!("lost the registrar at {}; registering again", link.addr());
            }
            if !first {
                tokio::time::sleep(REREGISTER).await;
            }
            first = false;
            registration = match self.connect(Target::Registrar(link.addr()), true).await {
                Ok(channel) => {
                    link.set(channel.clone()).await;
                    Some(channel)
                }
                Err(err) => {
                    tracing::debug!("the registrar at {} is unreachable: {err}", link.addr());
                    None
                }
            };
        }
    }

    /// Remembers `channel` as the way to the registrar.
    pub(crate) async fn set_registrar_channel(&self, channel: Channel) {
        self.0.link.set(channel).await;
    }

    /// The channel to registrar `index` (0: the first; see
    /// [`registrar_count`](Self::registrar_count)), dialing if needed.
    pub(crate) async fn registrar_channel_at(&self, index: usize) -> Result<Channel> {
        match index {
            0 => self.registrar_channel().await,
            _ => {
                self.registrar_link(index)
                    .channel(async |addr| self.connect(Target::Registrar(&addr), false).await)
                    .await
            }
        }
    }

    /// The channel to the registrar, (re)connecting if needed. The registrar
    /// itself talks to itself over a channel to itself like anyone else.
    pub(crate) async fn registrar_channel(&self) -> Result<Channel> {
        let me = Target::Actor {
            uuid: self.uid().uuid(),
            addr: self.0.connections.listen_addr(),
        };
        self.0
            .link
            .channel(async |addr| match self.is_registrar() {
                true => self.connect(me, false).await,
                false => self.connect(Target::Registrar(&addr), false).await,
            })
            .await
    }

    /// Unregisters this actor from every registrar (within the budget's
    /// first step).
    async fn leave_registrars(&self, budget: &Budget) {
        let others = self.0.others.iter().map(async |link| {
            if let Some(channel) = link.current().await
                && let Ok(answer) = channel.leave()
            {
                let _ = tokio::time::timeout_at(budget.children_by(), answer).await;
            }
        });
        futures::future::join(
            self.leave_registrar(budget),
            futures::future::join_all(others),
        )
        .await;
    }

    /// Unregisters this actor from the first registrar.
    async fn leave_registrar(&self, budget: &Budget) {
        if let Some(registrar) = self.registrar() {
            registrar.unregister(self.uid());
            return;
        }
        let Some(channel) = self.0.link.current().await else {
            return;
        };
        // A registrar parent that asked us to go dropped our entry then.
        let by_parent = self
            .0
            .cancelled_by_parent
            .load(std::sync::atomic::Ordering::Acquire);
        if by_parent && self.is_parent(&channel) {
            return;
        }
        if let Ok(answer) = channel.leave() {
            let _ = tokio::time::timeout_at(budget.children_by(), answer).await;
        }
    }

    pub(crate) fn child(&self, uuid: uuid::Uuid) -> Option<Arc<ChildHandle>> {
        self.0.children.get(uuid)
    }

    /// Kills every child at once (SIGKILL), without waiting: the last
    /// resort of a program told twice to stop.
    pub(crate) fn kill_children_now(&self) {
        self.0.children.kill_all_now();
    }

    /// The end of the actor's life, by its [`Budget`]: everything it runs
    /// is cancelled; its tasks and children get until `children_by`;
    /// children left are killed and reaped; then whoever asked for the
    /// cancellation is answered, before the asker's deadline.
    pub(crate) async fn finish(&self) {
        self.cancel(DEFAULT_GRACE);
        self.0.children.stop_spares();
        let budget = *self.0.budget.get().unwrap_or(&Budget::new(DEFAULT_GRACE));
        self.0.tasks.close();
        // Leave the registrar (while the tasks wind down) before refusing
        // connections: a lookup never hands out an actor that is about to
        // refuse on purpose.
        let (_, wound_down) = futures::future::join(
            self.leave_registrars(&budget),
            tokio::time::timeout_at(budget.children_by(), self.0.tasks.wait()),
        )
        .await;
        self.0.connections.stop_listening();
        if wound_down.is_err() {
            tracing::warn!(
                "tasks still running {:?} into a {:?} cancellation; ending anyway",
                budget.children_by() - (budget.deadline() - budget.grace()),
                budget.grace()
            );
        }
        self.0.children.finish(&budget).await;
        self.0.server.answer_cancel_requests();
        let peers = self.0.connections.all_peers();
        let flushes = peers.iter().map(|peer| {
            peer.close();
            peer.flushed()
        });
        let _ =
            tokio::time::timeout_at(budget.deadline(), futures::future::join_all(flushes)).await;
    }
}

impl Actor {
    /// The registration `channel` made ends, unless a newer channel of the
    /// same actor (a restarted child keeps its uid) speaks for it now.
    fn end_registration(&self, channel: &Channel) {
        let Some(registrar) = self.registrar() else {
            return;
        };
        let replaced = self
            .0
            .connections
            .peer(channel.peer().uuid())
            .is_some_and(|newer| !newer.same(channel));
        if !replaced {
            registrar.registration_ended(channel);
        }
    }
}

impl Inbound for Actor {
    fn call(&self, channel: &Channel, call: Incoming<'_>) -> Result<()> {
        self.0.server.serve(channel, call)
    }

    fn cancel_actor(&self, channel: &Channel, id: u64, grace: Duration, admission: Admission) {
        // Authority by role: a root is stopped through its program, any
        // other actor only by its parent.
        let refusal = if self.is_root() {
            Some(format!(
                "actor {} is a root actor and is not cancelled remotely; stop its program \
                 instead",
                self.uid()
            ))
        } else if !self.is_parent(channel) {
            Some(format!(
                "actor {} is cancelled only by its parent; {} is not its parent",
                self.uid(),
                channel.peer()
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            tracing::debug!("{message}");
            let refusal = foreign("NotCancellable", message, self.uid());
            let channel = channel.clone();
            self.0.tasks.spawn(async move {
                channel.send_error(id, &refusal).await;
                drop(admission);
            });
            return;
        }
        tracing::debug!(?grace, "cancel requested by the parent");
        self.0
            .cancelled_by_parent
            .store(true, std::sync::atomic::Ordering::Release);
        self.0.server.answer_when_done(channel, id, admission);
        self.cancel(grace);
    }

    fn leave(&self, channel: &Channel, id: u64, admission: Admission) {
        self.end_registration(channel);
        channel.acknowledge(id);
        drop(admission);
    }

    fn closed(&self, channel: &Channel) {
        self.0.connections.forget_peer(channel);
        self.end_registration(channel);
        if channel.went_silent()
            && let Some(child) = self.0.children.get(channel.peer().uuid())
        {
            // A child on another host that went silent may be cut off
            // rather than dead, and what stands for it here (its ssh) may
            // not hear of it for minutes: end it, so that it is reaped,
            // and counts as failed, now.
            tracing::warn!(actor = %channel.peer(), "a child went silent; ending it");
            child.kill_as_failed();
        }
        if self.is_parent(channel) {
            tracing::debug!("parent channel closed: cancelling");
            if !self
                .0
                .cancelled_by_parent
                .load(std::sync::atomic::Ordering::Acquire)
            {
                // Unasked: a failure, for a supervisor to see in the exit
                // status.
                self.0
                    .parent_lost
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            self.cancel(DEFAULT_GRACE / 2);
        }
    }
}
