//! An actor's link to its tree's registrar.

use crate::error::{Error, Result};
use crate::ipc::Channel;

/// The channel lookups go through (for a registered actor, the one that
/// keeps it registered), dialed again when lost.
pub(crate) struct RegistrarLink {
    addr: String,
    /// The registrar's Unix socket, when it is known to be on this host.
    local: Option<String>,
    channel: tokio::sync::Mutex<Option<Channel>>,
}

impl RegistrarLink {
    pub(crate) fn new(addr: String, local: Option<String>) -> Self {
        RegistrarLink {
            addr,
            local,
            channel: tokio::sync::Mutex::new(None),
        }
    }

    /// The registrar's address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The registrar's Unix socket, if it is on this host and has one.
    pub(crate) async fn local(&self) -> Option<String> {
        if let Some(local) = &self.local {
            return Some(local.clone());
        }
        let current = self.channel.lock().await;
        current
            .as_ref()
            .and_then(|channel| channel.peer_local().map(str::to_owned))
    }

    /// Remembers `channel` as the way to the registrar.
    pub(crate) async fn set(&self, channel: Channel) {
        *self.channel.lock().await = Some(channel);
    }

    /// The registrar channel if it is open, without dialing.
    pub(crate) async fn current(&self) -> Option<Channel> {
        self.channel
            .lock()
            .await
            .as_ref()
            .filter(|channel| !channel.is_closed())
            .cloned()
    }

    /// The channel to the registrar, dialed with `dial(addr, local)` if
    /// there is none open.
    pub(crate) async fn channel<F, Fut>(&self, dial: F) -> Result<Channel>
    where
        F: FnOnce(String, Option<String>) -> Fut,
        Fut: Future<Output = Result<Channel>>,
    {
        let mut current = self.channel.lock().await;
        if let Some(channel) = current.as_ref().filter(|channel| !channel.is_closed()) {
            return Ok(channel.clone());
        }
        let addr = self.addr.clone();
        let channel = dial(addr.clone(), self.local.clone())
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
}
