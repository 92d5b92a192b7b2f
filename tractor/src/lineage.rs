//! Lineages: one supervised child across its restarts.
//!
//! A supervisor restarts a failed child as a new process under the same
//! [`ActorUid`]. The portal its spawn returned must reach whichever process
//! is current, so it holds a [`Lineage`] rather than one channel: the
//! nursery moves the lineage from one incarnation to the next, and every
//! call asks it for the current channel.
//!
//! While a restart is under way a call waits for the new process (bounded
//! by [`Lineage::current`]'s timeout) instead of failing; calls already in
//! flight on the dead process's channel fail with it, naming the child. A
//! lineage that will not be restarted again (the nursery gave up on it, or
//! someone cancelled it) ends on its last channel, whose calls then fail
//! as they would on any closed channel.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::ipc::Channel;
use crate::uid::ActorUid;

/// Where a supervised child is in its life.
#[derive(Clone)]
enum Incarnation {
    /// A process serves under this channel.
    Up(Channel),
    /// The next process is being started; the last one's channel, if
    /// there was one.
    Restarting(Option<Channel>),
    /// No more restarts; the last channel, if the child ever had one.
    Ended(Option<Channel>),
}

/// One supervised child, followed across its restarts.
pub(crate) struct Lineage {
    uid: ActorUid,
    state: watch::Sender<Incarnation>,
    /// Cancelled when the child is to stay down (`cancel_actor`, the
    /// nursery cancelling): a restart under way stops.
    retired: CancellationToken,
}

impl Lineage {
    /// A lineage whose first process is being started.
    pub(crate) fn new(uid: ActorUid) -> Self {
        Lineage {
            uid,
            state: watch::Sender::new(Incarnation::Restarting(None)),
            retired: CancellationToken::new(),
        }
    }

    pub(crate) fn uid(&self) -> &ActorUid {
        &self.uid
    }

    /// The channel of the current process. While a restart is under way,
    /// or while the death of the last process is not yet handled, waits
    /// for the next one, up to `timeout`.
    pub(crate) async fn current(&self, timeout: Duration) -> Result<Channel> {
        let mut state = self.state.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let settled = match &*state.borrow_and_update() {
                    // A channel whose process has exited is about to be
                    // replaced or ended: wait for which.
                    Incarnation::Up(channel) if !channel.is_gone() => Some(Ok(channel.clone())),
                    Incarnation::Ended(Some(channel)) => Some(Ok(channel.clone())),
                    Incarnation::Ended(None) => Some(Err(Error::Disconnected {
                        actor: self.uid.clone(),
                    })),
                    Incarnation::Up(_) | Incarnation::Restarting(_) => None,
                };
                if let Some(settled) = settled {
                    return settled;
                }
                // The sender lives in this lineage, which we borrow.
                if state.changed().await.is_err() {
                    return Err(Error::Disconnected {
                        actor: self.uid.clone(),
                    });
                }
            }
        });
        waited.await.unwrap_or_else(|_| {
            Err(Error::Unreachable {
                actor: self.uid.clone(),
                reason: format!(
                    "it is being restarted and no new process answered within {timeout:?}"
                ),
            })
        })
    }

    /// The channel of the current process, or of the last one, without
    /// waiting.
    pub(crate) fn latest(&self) -> Option<Channel> {
        match &*self.state.borrow() {
            Incarnation::Up(channel)
            | Incarnation::Restarting(Some(channel))
            | Incarnation::Ended(Some(channel)) => Some(channel.clone()),
            Incarnation::Restarting(None) | Incarnation::Ended(None) => None,
        }
    }

    /// The process is gone and another is on its way.
    pub(crate) fn restarting(&self) {
        self.state.send_modify(|state| {
            if let Incarnation::Up(channel) = state {
                *state = Incarnation::Restarting(Some(channel.clone()));
            }
        });
    }

    /// A new process serves under `channel`.
    pub(crate) fn up(&self, channel: Channel) {
        self.state.send_replace(Incarnation::Up(channel));
    }

    /// No more restarts: calls go to the last channel and fail there.
    pub(crate) fn end(&self) {
        self.state.send_modify(|state| {
            let last = match state {
                Incarnation::Up(channel) => Some(channel.clone()),
                Incarnation::Restarting(last) | Incarnation::Ended(last) => last.clone(),
            };
            *state = Incarnation::Ended(last);
        });
    }

    /// The child is to stay down: no restart follows its next end.
    pub(crate) fn retire(&self) {
        self.retired.cancel();
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.is_cancelled()
    }

    /// Resolves once the child is retired.
    pub(crate) fn retired(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.retired.clone().cancelled_owned()
    }
}
