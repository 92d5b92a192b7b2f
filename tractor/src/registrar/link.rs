//! An actor's link to its tree's registrar.

use crate::error::{Error, Result};
use crate::ipc::Channel;

/// The channel lookups go through (for a registered actor, the one that
/// keeps it registered), dialed again when lost.
pub(crate) struct RegistrarLink {
    addr: String,
    channel: tokio::sync::Mutex<Option<Channel>>,
    /// For a child of the registrar: set once the channel to the parent
    /// (which is its registration) is open. Calls can arrive on that
    /// channel before it is handed here, and they must not dial a second
    /// one.
    via_parent: Option<tokio::sync::watch::Sender<bool>>,
}

impl RegistrarLink {
    /// The link to the registrar at `addr`; `via_parent` if the registrar
    /// is this actor's parent.
    pub(crate) fn new(addr: String, via_parent: bool) -> Self {
        RegistrarLink {
            addr,
            channel: tokio::sync::Mutex::new(None),
            via_parent: via_parent.then(|| tokio::sync::watch::Sender::new(false)),
        }
    }

    /// The registrar's address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Remembers `channel` as the way to the registrar.
    pub(crate) async fn set(&self, channel: Channel) {
        *self.channel.lock().await = Some(channel);
        if let Some(set) = &self.via_parent {
            set.send_replace(true);
        }
    }

    /// The registrar channel if it is open and its peer has not hung up
    /// (even if the reader has not seen that yet), without dialing.
    pub(crate) async fn current(&self) -> Option<Channel> {
        self.channel
            .lock()
            .await
            .as_ref()
            .filter(|channel| !channel.is_gone())
            .cloned()
    }

    /// The channel to the registrar, dialed with `dial(addr)` if there is
    /// none open (one whose registrar hung up counts as none, so a lookup
    /// right after a registrar died is told so rather than sent into a
    /// dead channel). Lookups wait for one dial rather than each making their
    /// own; the dial's opening deadline bounds that wait.
    pub(crate) async fn channel<F, Fut>(&self, dial: F) -> Result<Channel>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Channel>>,
    {
        if let Some(set) = &self.via_parent {
            // The parent channel exists already; it is being handed over.
            let _ = set.subscribe().wait_for(|set| *set).await;
        }
        let mut current = self.channel.lock().await;
        if let Some(channel) = current.as_ref().filter(|channel| !channel.is_gone()) {
            return Ok(channel.clone());
        }
        let addr = self.addr.clone();
        let channel = dial(addr.clone()).await.map_err(|err| {
            Error::other(format!(
                "the registrar at {addr} is unreachable ({err}); is the program that runs it \
                 still up?"
            ))
        })?;
        *current = Some(channel.clone());
        Ok(channel)
    }
}
