//! Children: the processes an actor started, from the request to start
//! one until it is reaped.
//!
//! [`Children`] is the one service that owns them: it starts processes
//! (through a `spawn` backend, the fork server started on first use),
//! waits for each new child to connect back ([`Expected`]), keeps a
//! [`ChildHandle`] per live child, and reaps. It knows nothing of nurseries
//! or the registrar: it reports each child that is going (asked to cancel
//! or killed by this actor, or exited) to the hook it was made with, so
//! whoever cares (discovery) is fed by that event rather than called from
//! here.
//!
//! Every reaper is a task on the actor's tracker, so the actor never exits
//! before its children are reaped.

mod expected;
mod handle;

use crate::lock::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub(crate) use expected::Expected;
use expected::Expecting;
pub(crate) use handle::ChildHandle;

use crate::auth::NONCE;
use crate::budget::Budget;
use crate::ipc::Channel;
use crate::spawn::forkserver::ForkServer;
use crate::spawn::spare::ExecSpares;
use crate::spawn::{SpawnBackend, SpawnSpec, StartMethod};
use crate::uid::ActorUid;

/// How long a new child has to connect back after its process started
/// (and so how long a call through a supervised portal waits for a
/// restart).
pub(crate) const SPAWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Called with a child's uid when this actor asks it to go (cancel, kill)
/// and again once it has exited.
pub(crate) type OnGone = Box<dyn Fn(&ActorUid) + Send + Sync>;

/// The children of one actor; cheap to clone.
#[derive(Clone)]
pub(crate) struct Children(Arc<Shared>);

struct Shared {
    tasks: TaskTracker,
    live: Mutex<HashMap<Uuid, Arc<ChildHandle>>>,
    expected: Mutex<HashMap<Uuid, Expecting>>,
    /// Started on the first spawn that uses it.
    forkserver: tokio::sync::OnceCell<Arc<ForkServer>>,
    /// The `exec` backend's spare process, once it has been used.
    exec_spares: Arc<ExecSpares>,
    /// What makes this executable reach its entry point (see
    /// `Settings::exec_args`).
    exec_args: Vec<String>,
    on_gone: OnGone,
}

impl Children {
    pub(crate) fn new(tasks: TaskTracker, exec_args: Vec<String>, on_gone: OnGone) -> Self {
        Children(Arc::new(Shared {
            tasks,
            live: Mutex::default(),
            expected: Mutex::default(),
            forkserver: tokio::sync::OnceCell::new(),
            exec_spares: Arc::new(ExecSpares::new()),
            exec_args,
            on_gone,
        }))
    }

    /// Registers interest in the child `uuid` connecting back; the channel
    /// is delivered once it has handshaken over the returned challenge.
    pub(crate) fn expect(&self, uuid: Uuid) -> crate::Result<Expected> {
        Expected::register(self.clone(), uuid)
    }

    /// The challenge given to child `uuid` at spawn, if it is expected and
    /// has not used it yet (left in place: see [`take_challenge`]).
    ///
    /// [`take_challenge`]: Self::take_challenge
    pub(crate) fn challenge(&self, uuid: Uuid) -> Option<[u8; NONCE]> {
        lock(&self.0.expected)
            .get(&uuid)
            .and_then(|expecting| expecting.challenge)
    }

    /// Uses up child `uuid`'s challenge once a hello proved itself over
    /// it; `false` if another connection used it first.
    pub(crate) fn take_challenge(&self, uuid: Uuid) -> bool {
        lock(&self.0.expected)
            .get_mut(&uuid)
            .and_then(|expecting| expecting.challenge.take())
            .is_some()
    }

    /// Whether `uuid` is a child being spawned: only its spawn challenge
    /// may open a channel under that uuid.
    pub(crate) fn is_expected(&self, uuid: Uuid) -> bool {
        lock(&self.0.expected).contains_key(&uuid)
    }

    /// A child that proved itself over its spawn challenge connected back.
    pub(crate) fn connected(&self, channel: Channel) {
        let expecting = lock(&self.0.expected).remove(&channel.peer().uuid());
        if let Some(expecting) = expecting {
            let _ = expecting.channel.send(channel);
        }
    }

    /// Starts the process that becomes the actor `spec` describes, and its
    /// reaper; with the socket it is linked to us by, if it is (see
    /// `Started::link`), over which it got `after_spec` behind its spec:
    /// the caller accepts its opening over it.
    pub(crate) async fn start(
        &self,
        spec: &SpawnSpec,
        after_spec: &[u8],
        method: StartMethod,
    ) -> std::io::Result<(
        Arc<ChildHandle>,
        Option<crate::ipc::unix_stream::LocalStream>,
    )> {
        let mut started = match method {
            StartMethod::Exec => {
                let spares = &self.0.exec_spares;
                spares.spawn(spec, after_spec, &self.0.tasks).await?
            }
            StartMethod::ForkServer => self.forkserver().await?.spawn(spec, after_spec).await?,
        };
        let link = started.link.take();
        let child = ChildHandle::start(spec.uid.clone(), started, self);
        if method == StartMethod::Exec {
            self.0
                .exec_spares
                .refill_after(spec, &self.0.tasks, child.exited());
        }
        Ok((child, link))
    }

    /// Starts the child `spec` describes on another host, through
    /// `launcher`, running `program` there.
    pub(crate) async fn start_elsewhere(
        &self,
        spec: &SpawnSpec,
        launcher: &dyn crate::spawn::ssh::Launcher,
        program: &std::path::Path,
    ) -> std::io::Result<Arc<ChildHandle>> {
        let started = launcher.launch(program, &spec.exec_args, spec).await?;
        Ok(ChildHandle::start(spec.uid.clone(), started, self))
    }

    async fn forkserver(&self) -> std::io::Result<Arc<ForkServer>> {
        self.0
            .forkserver
            .get_or_try_init(|| ForkServer::start(&self.0.exec_args))
            .await
            .cloned()
    }

    pub(crate) fn get(&self, uuid: Uuid) -> Option<Arc<ChildHandle>> {
        lock(&self.0.live).get(&uuid).cloned()
    }

    fn live(&self) -> Vec<Arc<ChildHandle>> {
        lock(&self.0.live).values().cloned().collect()
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.0.tasks
    }

    /// Kills every child at once (SIGKILL), without waiting: the last
    /// resort of a program told twice to stop.
    pub(crate) fn kill_all_now(&self) {
        for child in self.live() {
            child.kill_now();
        }
        if let Some(server) = self.0.forkserver.get() {
            server.kill_now();
        }
        self.0.exec_spares.kill_now();
    }

    /// The first step of the actor's shutdown: no spare is started any
    /// more (one on its way would only be given up again).
    pub(crate) fn stop_spares(&self) {
        self.0.exec_spares.stop();
    }

    /// The last step of the actor's shutdown: children still there at the
    /// budget's `children_by` are killed and reaped (until `answer_by`),
    /// then the spare and the fork server go.
    pub(crate) async fn finish(&self, budget: &Budget) {
        let children = self.live();
        for child in &children {
            child.kill();
        }
        let reaped = futures::future::join_all(children.iter().map(|child| child.exited()));
        if tokio::time::timeout_at(budget.answer_by(), reaped)
            .await
            .is_err()
        {
            tracing::warn!("children still unreaped after SIGKILL; answering anyway");
        }
        let _ = tokio::time::timeout_at(budget.answer_by(), self.0.exec_spares.close()).await;
        if let Some(server) = self.0.forkserver.get() {
            let _ = tokio::time::timeout_at(budget.answer_by(), server.shut_down()).await;
        }
    }

    fn adopt(&self, child: &Arc<ChildHandle>) {
        lock(&self.0.live).insert(child.uid().uuid(), child.clone());
    }

    fn reaped(&self, uid: &ActorUid) {
        lock(&self.0.live).remove(&uid.uuid());
    }

    fn gone(&self, uid: &ActorUid) {
        (self.0.on_gone)(uid);
    }

    fn forget_expected(&self, uuid: Uuid) {
        lock(&self.0.expected).remove(&uuid);
    }

    fn insert_expected(&self, uuid: Uuid, expecting: Expecting) {
        lock(&self.0.expected).insert(uuid, expecting);
    }
}
