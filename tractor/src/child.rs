//! A child actor as its parent sees it: a process to reap, to ask to
//! cancel and, failing that, to kill.
//!
//! The process is owned by a reaper task (tracked by the parent actor, so
//! the parent never exits before its children are reaped). Everyone else
//! holds a [`ChildHandle`]: it tells whether and how the process ended and
//! routes kill requests to the reaper, which alone may signal the pid while
//! it is known to be unreaped.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::actor::Actor;
use crate::ipc::Channel;
use crate::spawn::Process;
use crate::uid::ActorUid;

pub(crate) struct ChildHandle {
    uid: ActorUid,
    pid: u32,
    /// How the process ended, once reaped.
    status: watch::Receiver<Option<String>>,
    kill: CancellationToken,
    /// Set when this actor asked the child to go (cancel, kill, failed
    /// spawn): its exit is then expected, not an error.
    cancel_requested: AtomicBool,
    /// Whether the child acknowledged a cancel request.
    acked: AtomicBool,
    channel: OnceLock<Channel>,
}

impl ChildHandle {
    /// Takes ownership of a freshly spawned process and starts reaping it.
    pub(crate) fn start(uid: ActorUid, mut process: Box<dyn Process>, actor: &Actor) -> Arc<Self> {
        let (tx, status) = watch::channel(None);
        let child = Arc::new(ChildHandle {
            uid,
            pid: process.pid(),
            status,
            kill: CancellationToken::new(),
            cancel_requested: AtomicBool::new(false),
            acked: AtomicBool::new(false),
            channel: OnceLock::new(),
        });
        actor.add_child(child.clone());
        let kill = child.kill.clone();
        let uid = child.uid.clone();
        let uuid = uid.uuid();
        let owner = actor.clone();
        let handle = Arc::downgrade(&child);
        actor.tasks().spawn(async move {
            let mut killed = false;
            let status = loop {
                tokio::select! {
                    status = process.wait() => break status,
                    () = kill.cancelled(), if !killed => {
                        killed = true;
                        if let Err(err) = process.start_kill() {
                            tracing::warn!(pid = process.pid(), "could not kill: {err}");
                        }
                    }
                }
            };
            let status = match status {
                Ok(status) => status.to_string(),
                Err(err) => format!("unknown exit status: {err}"),
            };
            tracing::info!(actor = %uid, %status, "reaped");
            owner.remove_child(uuid);
            // A killed child cannot remove its own socket file.
            let local = handle.upgrade().and_then(|child| {
                child
                    .channel()
                    .and_then(|c| c.peer_local().map(str::to_owned))
            });
            if let Some(path) = local {
                let _ = std::fs::remove_file(path);
            }
            // A registrar parent knows first that its child is gone: its
            // entry goes before anyone can see the exit.
            if let Some(registrar) = owner.registrar() {
                registrar.unregister_uuid(uuid);
            }
            let _ = tx.send(Some(status));
        });
        child
    }

    pub(crate) fn uid(&self) -> &ActorUid {
        &self.uid
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The channel to the child, once it has connected back.
    pub(crate) fn channel(&self) -> Option<&Channel> {
        self.channel.get()
    }

    pub(crate) fn set_channel(&self, channel: Channel) {
        let _ = self.channel.set(channel);
    }

    /// How the process ended, if it has.
    pub(crate) fn status(&self) -> Option<String> {
        self.status.borrow().clone()
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.status.borrow().is_some()
    }

    /// Resolves once the process has been reaped, with how it ended.
    pub(crate) fn exited(&self) -> impl Future<Output = String> + Send + 'static {
        let mut status = self.status.clone();
        async move {
            match status.wait_for(Option::is_some).await {
                Ok(status) => status.clone().unwrap_or_default(),
                // The reaper is gone without a status: only at runtime
                // shutdown, when nothing waits for this any more.
                Err(_) => "unknown exit status".into(),
            }
        }
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::Acquire)
    }

    /// Records that the child's end is expected; returns whether it already
    /// was.
    pub(crate) fn expect_exit(&self) -> bool {
        self.cancel_requested.swap(true, Ordering::AcqRel)
    }

    /// Kills the child now (SIGKILL); its exit is expected.
    pub(crate) fn kill(&self) {
        self.expect_exit();
        self.kill.cancel();
    }

    /// Signals the pid directly, for when the process is about to exit and
    /// the reaper will not run again.
    pub(crate) fn kill_now(&self) {
        self.kill();
        if !self.has_exited() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }

    /// Graceful, then hard: asks the child to cancel within `grace`, kills
    /// it if it has not exited by then, and resolves once it is reaped.
    /// Returns whether the child acknowledged the request.
    pub(crate) async fn cancel(&self, grace: Duration) -> bool {
        if self.expect_exit() || self.has_exited() {
            // Someone else is already cancelling it: just wait.
            let _ = tokio::time::timeout(grace * 2, self.exited()).await;
            self.kill.cancel();
            self.exited().await;
            return self.acked.load(Ordering::Acquire);
        }
        let request = self.channel().map(|channel| channel.cancel_actor(grace));
        let acked = match request {
            Some(Ok(ack)) => {
                let acked = tokio::time::timeout(grace, async {
                    let acked = ack.await.is_ok();
                    // An acknowledging child exits right after answering.
                    self.exited().await;
                    acked
                })
                .await;
                acked.unwrap_or(false)
            }
            // Not connected yet, or the channel is gone: nothing to ask.
            _ => false,
        };
        self.acked.store(acked, Ordering::Release);
        if !self.has_exited() {
            tracing::debug!(child = %self.uid, pid = self.pid, "no exit within {grace:?}: killing");
            self.kill.cancel();
        }
        self.exited().await;
        acked
    }

    /// Starts [`cancel`](Self::cancel) in the background (tracked by
    /// `actor`), for callers that cannot wait, such as `Drop`.
    pub(crate) fn cancel_in_background(self: &Arc<Self>, actor: &Actor, grace: Duration) {
        if self.has_exited() || self.cancel_requested() {
            return;
        }
        let child = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(_) => {
                actor.tasks().spawn(async move {
                    child.cancel(grace).await;
                });
            }
            // No runtime, so no reaper: signal the pid ourselves, the best
            // that is left (it is unreaped, so the pid is still the child's).
            Err(_) => self.kill_now(),
        }
    }
}
