//! Connections: where an actor listens, the channels it holds, and how it
//! dials other actors.
//!
//! An actor listens on TCP (the address the registrar and other hosts
//! know) and, where it can, on a Unix socket too (see `ipc::transport`).
//! It keeps one open channel per peer in a table, so that a portal to an
//! actor it already talks to reuses that channel. What an accepted or
//! dialed channel is *for* (a returning child, a registration) is not
//! decided here: the actor wires it to the service concerned.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::{NONCE, Secret};
use crate::error::Result;
use crate::ipc::Channel;
use crate::ipc::handshake::{self, Opened};
use crate::ipc::msg::Handshake;
use crate::ipc::transport::{self, Listener, Stream};
use crate::uid::ActorUid;

pub(crate) struct Connections {
    me: ActorUid,
    secret: Secret,
    addr: OnceLock<String>,
    /// This actor's Unix socket, if it could make one.
    local: OnceLock<PathBuf>,
    peers: Mutex<HashMap<Uuid, Channel>>,
    /// Stops the accept loops.
    listening: CancellationToken,
}

impl Connections {
    pub(crate) fn new(me: ActorUid, secret: Secret) -> Self {
        Connections {
            me,
            secret,
            addr: OnceLock::new(),
            local: OnceLock::new(),
            peers: Mutex::default(),
            listening: CancellationToken::new(),
        }
    }

    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Where this actor accepts TCP connections.
    pub(crate) fn listen_addr(&self) -> &str {
        self.addr.get().map_or("", String::as_str)
    }

    /// This actor's Unix socket path, for actors on the same host.
    pub(crate) fn local_path(&self) -> Option<String> {
        self.local
            .get()
            .map(|path| path.to_string_lossy().into_owned())
    }

    /// Who we are, for the opening of a channel; `register` asks a
    /// registrar to keep us registered while the channel lives.
    pub(crate) fn introduction(&self, register: bool) -> Handshake {
        Handshake::new(
            self.me.clone(),
            self.addr.get().cloned(),
            self.local_path(),
            register,
        )
    }

    /// Starts accepting on `listener` (and on a Unix socket of this
    /// actor's, where it can make one) until [`stop_listening`]; every
    /// connection is handed to `accept` on a task of its own.
    ///
    /// [`stop_listening`]: Self::stop_listening
    pub(crate) fn listen<F, Fut>(&self, listener: TcpListener, accept: F) -> Result<()>
    where
        F: Fn(Stream) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let _ = self.addr.set(listener.local_addr()?.to_string());
        self.accept_loop(listener, accept.clone());
        if let Some((local, path)) = transport::bind_local(&self.me.uuid().simple().to_string()) {
            let _ = self.local.set(path);
            self.accept_loop(local, accept);
        }
        Ok(())
    }

    fn accept_loop<F, Fut>(&self, listener: impl Listener, accept: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = self.listening.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = listener.next() => next,
                    () = stop.cancelled() => return,
                };
                match next {
                    Ok(stream) => {
                        tokio::spawn(accept(stream));
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

    /// Stops accepting connections and removes this actor's socket file:
    /// from now on, dialing this actor is refused.
    pub(crate) fn stop_listening(&self) {
        self.listening.cancel();
        if let Some(path) = self.local.get() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Checks a peer that dialed us (see `handshake::accept`).
    pub(crate) async fn accept(
        &self,
        stream: Stream,
        challenge_for: impl FnOnce(&Handshake) -> Option<[u8; NONCE]>,
    ) -> Result<(Opened, handshake::Pending)> {
        let stream = match stream {
            Stream::Tcp(tcp) => crate::ipc::tls::transport()?.accepted(tcp).await?,
            other => other,
        };
        handshake::accept(stream, &self.secret, challenge_for).await
    }

    /// Dials the actor listening at `addr` (or at its Unix socket `local`).
    pub(crate) async fn dial(
        &self,
        addr: &str,
        local: Option<&str>,
        register: bool,
    ) -> Result<Opened> {
        handshake::dial(addr, local, &self.introduction(register), &self.secret).await
    }

    /// Opens a channel over a stream we already connected.
    pub(crate) async fn dial_stream(&self, stream: Stream, register: bool) -> Result<Opened> {
        handshake::over(stream, &self.introduction(register), &self.secret).await
    }

    /// A spawned child dials its parent, proving the secret over the
    /// challenge of its spawn spec.
    pub(crate) async fn dial_parent(
        &self,
        addr: &str,
        local: Option<&str>,
        register: bool,
        challenge: &[u8; NONCE],
    ) -> Result<Opened> {
        let ours = self.introduction(register);
        handshake::dial_parent(addr, local, &ours, &self.secret, challenge).await
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<Uuid, Channel>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an open channel as the one to its peer.
    pub(crate) fn add_peer(&self, channel: &Channel) {
        self.peers().insert(channel.peer().uuid(), channel.clone());
        // The channel may have closed before it was recorded.
        if channel.is_closed() {
            self.forget_peer(channel);
        }
    }

    /// Forgets a closed channel (unless a newer one to that peer replaced
    /// it).
    pub(crate) fn forget_peer(&self, channel: &Channel) {
        let mut peers = self.peers();
        if let Some(known) = peers.get(&channel.peer().uuid()) {
            if known.same(channel) {
                peers.remove(&channel.peer().uuid());
            }
        }
    }

    /// The open channel to actor `uuid`, if there is one.
    pub(crate) fn peer(&self, uuid: Uuid) -> Option<Channel> {
        self.peers()
            .get(&uuid)
            .filter(|channel| !channel.is_closed())
            .cloned()
    }

    /// Every open channel.
    pub(crate) fn all_peers(&self) -> Vec<Channel> {
        self.peers().values().cloned().collect()
    }
}
