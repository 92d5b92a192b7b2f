//! Waiting for a new child to connect back.
//!
//! The parent puts a fresh, single-use challenge in the child's spawn
//! spec; the child proves the tree's secret over it in its first message,
//! and its channel is handed to whoever spawned it. Only a connection that
//! used that challenge is: a peer that merely claims the child's uuid gets
//! nothing.

use tokio::sync::oneshot;
use uuid::Uuid;

use super::Children;
use crate::auth::{self, NONCE};
use crate::ipc::Channel;

/// The parent's side of a child it is waiting for.
pub(super) struct Expecting {
    pub(super) channel: oneshot::Sender<Channel>,
    /// Single-use: the child proves the secret over it in its hello.
    pub(super) challenge: Option<[u8; NONCE]>,
}

/// A child we are waiting for; dropping it forgets the expectation.
pub(crate) struct Expected {
    children: Children,
    uuid: Uuid,
    pub(crate) channel: oneshot::Receiver<Channel>,
    /// Goes in the child's spawn spec.
    pub(crate) challenge: [u8; NONCE],
}

impl Expected {
    pub(super) fn register(children: Children, uuid: Uuid) -> crate::Result<Self> {
        let (tx, rx) = oneshot::channel();
        let challenge = auth::nonce()?;
        children.insert_expected(
            uuid,
            Expecting {
                channel: tx,
                challenge: Some(challenge),
            },
        );
        Ok(Expected {
            children,
            uuid,
            channel: rx,
            challenge,
        })
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.children.forget_expected(self.uuid);
    }
}
