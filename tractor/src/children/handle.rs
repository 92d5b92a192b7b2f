//! A child actor as its parent sees it: a process to reap, to ask to
//! cancel and, failing that, to kill.
//!
//! The process is owned by a reaper task (tracked by the parent actor, so
//! the parent never exits before its children are reaped). Everyone else
//! holds a [`ChildHandle`]: it tells whether and how the process ended and
//! routes kill requests to the reaper, which alone may signal the process
//! while it is known to be unreaped.

use std::future::Future;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Children;
use crate::ipc::Channel;
use crate::spawn::{KillNow, Started};
use crate::uid::ActorUid;

pub(crate) struct ChildHandle {
    uid: ActorUid,
    pid: u32,
    /// How the process ended, once reaped.
    status: watch::Receiver<Option<ExitStatus>>,
    kill: CancellationToken,
    /// Kills without the reaper, for an actor about to exit.
    killer: Box<dyn KillNow>,
    /// Set when this actor asked the child to go (cancel, kill, failed
    /// spawn): its exit is then expected, not an error.
    cancel_requested: AtomicBool,
    /// Whether the child acknowledged a cancel request.
    acked: AtomicBool,
    channel: OnceLock<Channel>,
    /// Told when this actor asks the child to go (the registrar drops it
    /// before the child stops listening).
    owner: Children,
}

impl ChildHandle {
    /// Takes ownership of a freshly started process and starts reaping it.
    pub(super) fn start(uid: ActorUid, started: Started, children: &Children) -> Arc<Self> {
        let Started {
            mut process,
            killer,
        } = started;
        let (tx, status) = watch::channel(None);
        let child = Arc::new(ChildHandle {
            uid,
            pid: process.pid(),
            status,
            kill: CancellationToken::new(),
            killer,
            cancel_requested: AtomicBool::new(false),
            acked: AtomicBool::new(false),
            channel: OnceLock::new(),
            owner: children.clone(),
        });
        children.adopt(&child);
        let kill = child.kill.clone();
        let uid = child.uid.clone();
        let owner = children.clone();
        children.tasks().spawn(async move {
            let mut killed = false;
            let status = loop {
                tokio::select! {
                    status = process.wait() => break status,
                    () = kill.cancelled(), if !killed => {
                        killed = true;
                        process.start_kill();
                    }
                }
            };
            tracing::info!(actor = %uid, %status, "reaped");
            // A killed child cannot remove its own socket file; its path
            // follows from its uuid, inside our own directory.
            if let Ok(path) = crate::ipc::local::actor_socket(uid.uuid()) {
                let _ = std::fs::remove_file(path);
            }
            // Reported before anyone can see the exit: a registrar parent
            // drops the child's entry first.
            owner.reaped(&uid);
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
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.status.borrow().is_some()
    }

    /// Resolves once the process has been reaped, with how it ended.
    pub(crate) fn exited(&self) -> impl Future<Output = ExitStatus> + Send + 'static {
        let mut status = self.status.clone();
        async move {
            match status.wait_for(Option::is_some).await {
                Ok(status) => status.unwrap_or_else(killed),
                // The reaper is gone without a status: only at runtime
                // shutdown, when the process goes down with us.
                Err(_) => killed(),
            }
        }
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::Acquire)
    }

    /// Records that the child's end is expected; returns whether it already
    /// was.
    pub(crate) fn expect_exit(&self) -> bool {
        let already = self.cancel_requested.swap(true, Ordering::AcqRel);
        if !already {
            self.owner.gone(&self.uid);
        }
        already
    }

    /// Kills the child now (SIGKILL); its exit is expected.
    pub(crate) fn kill(&self) {
        self.expect_exit();
        self.kill.cancel();
    }

    /// Kills without going through the reaper, for when the process is
    /// about to exit and the reaper will not run again.
    pub(crate) fn kill_now(&self) {
        self.kill();
        if !self.has_exited() {
            self.killer.kill_now();
        }
    }

    /// Graceful, then hard: asks the child to cancel within `grace`, kills
    /// it if it has not exited by then, and resolves once it is reaped.
    /// A zero grace kills at once. Returns whether the child acknowledged.
    pub(crate) async fn cancel(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        if self.expect_exit() || self.has_exited() {
            // Someone else is already cancelling it: wait as long as we
            // were asked to, then make sure.
            let _ = tokio::time::timeout_at(deadline, self.exited()).await;
            self.kill.cancel();
            self.exited().await;
            return self.acked.load(Ordering::Acquire);
        }
        let request = match (grace.is_zero(), self.channel()) {
            (false, Some(channel)) => channel.cancel_actor(grace).ok(),
            // Nothing to ask: no time for it, not connected yet, or gone.
            _ => None,
        };
        let acked = match request {
            Some(ack) => {
                let answered = tokio::time::timeout_at(deadline, async {
                    let acked = ack.await.is_ok();
                    // An acknowledging child exits right after answering.
                    self.exited().await;
                    acked
                })
                .await;
                answered.unwrap_or(false)
            }
            None => false,
        };
        self.acked.store(acked, Ordering::Release);
        if !self.has_exited() {
            tracing::debug!(child = %self.uid, pid = self.pid, "no exit within {grace:?}: killing");
            self.kill.cancel();
        }
        self.exited().await;
        acked
    }

    /// Starts [`cancel`](Self::cancel) in the background (tracked by the
    /// actor), for callers that cannot wait, such as `Drop`.
    pub(crate) fn cancel_in_background(self: &Arc<Self>, children: &Children, grace: Duration) {
        if self.has_exited() || self.cancel_requested() {
            return;
        }
        let child = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(_) => {
                children.tasks().spawn(async move {
                    child.cancel(grace).await;
                });
            }
            // No runtime, so no reaper: kill it ourselves, the best that
            // is left.
            Err(_) => self.kill_now(),
        }
    }
}

/// The status of a process that was killed (what a lost reaper leaves).
fn killed() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(libc::SIGKILL)
}
