//! A child actor as its parent sees it: a process to reap, to ask to
//! cancel and, failing that, to kill.
//!
//! The process is owned by a reaper task (tracked by the parent actor, so
//! the parent never exits before its children are reaped). Everyone else
//! holds a [`ChildHandle`]: it tells whether and how the process ended and
//! routes kill requests to the reaper, which alone may signal the process
//! while it is known to be unreaped.
//!
//! A process is *gone* once it has exited and *reaped* once its status is
//! known. The two differ for a forked child, which the fork server reaps:
//! whoever waits only for the end of a child it asked to go (a nursery
//! closing) waits for [`ChildHandle::gone`], not for the server's report.

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
    /// How far the process is in its end.
    life: watch::Receiver<Life>,
    kill: CancellationToken,
    /// Kills without the reaper, for an actor about to exit.
    killer: Box<dyn KillNow>,
    /// Set when this actor asked the child to go (cancel, kill, failed
    /// spawn): its exit is then expected, not an error.
    cancel_requested: AtomicBool,
    /// Whether the child acknowledged a cancel request (shared with the
    /// reaper: an acknowledging child removed its own socket file).
    acked: Arc<AtomicBool>,
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
            ..
        } = started;
        let (tx, life) = watch::channel(Life::Running);
        let child = Arc::new(ChildHandle {
            uid,
            pid: process.pid(),
            life,
            kill: CancellationToken::new(),
            killer,
            cancel_requested: AtomicBool::new(false),
            acked: Arc::default(),
            channel: OnceLock::new(),
            owner: children.clone(),
        });
        children.adopt(&child);
        let kill = child.kill.clone();
        let uid = child.uid.clone();
        let owner = children.clone();
        let acked = child.acked.clone();
        children.tasks().spawn(async move {
            let mut killed = false;
            let mut gone = process.take_gone();
            let status = loop {
                tokio::select! {
                    status = process.wait() => break status,
                    () = async { gone.as_mut().expect("guarded").await }, if gone.is_some() => {
                        gone = None;
                        left(&uid, &owner, &tx, &acked);
                    }
                    () = kill.cancelled(), if !killed => {
                        killed = true;
                        process.start_kill();
                    }
                }
            };
            if tx.borrow().is_running() {
                left(&uid, &owner, &tx, &acked);
            }
            tracing::info!(actor = %uid, %status, "reaped");
            owner.reaped(&uid);
            let _ = tx.send(Life::Reaped(status));
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

    /// How the process ended, if it has been reaped.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        match *self.life.borrow() {
            Life::Reaped(status) => Some(status),
            _ => None,
        }
    }

    /// Whether the process has been reaped.
    pub(crate) fn has_exited(&self) -> bool {
        self.status().is_some()
    }

    /// Resolves once the process has been reaped, with how it ended.
    pub(crate) fn exited(&self) -> impl Future<Output = ExitStatus> + Send + 'static {
        let mut life = self.life.clone();
        async move {
            match life.wait_for(|life| matches!(life, Life::Reaped(_))).await {
                Ok(life) => match *life {
                    Life::Reaped(status) => status,
                    _ => killed(),
                },
                // The reaper is gone without a status: only at runtime
                // shutdown, when the process goes down with us.
                Err(_) => killed(),
            }
        }
    }

    /// Whether the process has exited (it may not be reaped yet).
    pub(crate) fn is_gone(&self) -> bool {
        !self.life.borrow().is_running()
    }

    /// Resolves once the process has exited, which for a forked child
    /// comes before the fork server has reaped it and said how it ended.
    pub(crate) fn gone(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut life = self.life.clone();
        async move {
            // An error: the reaper is gone, at runtime shutdown.
            let _ = life.wait_for(|life| !life.is_running()).await;
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

    /// Kills the child now (SIGKILL) as failed: its end was not asked
    /// for, and counts as a failure (for a supervisor, a restart).
    pub(crate) fn kill_as_failed(&self) {
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
    /// it if it has not exited by then, and resolves once it is gone (its
    /// reaper still reaps it, and the actor waits for that before it ends).
    /// A zero grace kills at once. Returns whether the child acknowledged.
    pub(crate) async fn cancel(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        if self.expect_exit() || self.is_gone() {
            // Someone else is already cancelling it: wait as long as we
            // were asked to, then make sure.
            let _ = tokio::time::timeout_at(deadline, self.gone()).await;
            self.kill.cancel();
            self.gone().await;
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
                    // Before the exit, for the reaper to see (see `left`).
                    self.acked.store(acked, Ordering::Release);
                    // An acknowledging child exits right after answering.
                    self.gone().await;
                    acked
                })
                .await;
                answered.unwrap_or(false)
            }
            None => false,
        };
        self.acked.store(acked, Ordering::Release);
        if !self.is_gone() {
            tracing::debug!(child = %self.uid, pid = self.pid, "no exit within {grace:?}: killing");
            self.kill.cancel();
        }
        self.gone().await;
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

/// How far a child process is in its end.
#[derive(Clone, Copy)]
enum Life {
    Running,
    /// Exited, not reaped yet.
    Gone,
    Reaped(ExitStatus),
}

impl Life {
    fn is_running(&self) -> bool {
        matches!(self, Life::Running)
    }
}

/// What follows a child's exit before anyone can see it: its socket file
/// goes (a killed child cannot remove its own; the path follows from its
/// uuid, inside our own directory), and the hook hears of it (a registrar
/// parent drops the child's entry). A child that acknowledged a cancel
/// removed its socket before it answered, so the parent's unlink, on the
/// way to everyone waiting for the child's end, is skipped.
fn left(uid: &ActorUid, owner: &Children, life: &watch::Sender<Life>, acked: &AtomicBool) {
    if !acked.load(Ordering::Acquire)
        && let Ok(path) = crate::ipc::local::actor_socket(uid.uuid())
    {
        let _ = std::fs::remove_file(path);
    }
    owner.gone(uid);
    let _ = life.send(Life::Gone);
}

/// The status of a process that was killed (what a lost reaper leaves).
fn killed() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(libc::SIGKILL)
}
