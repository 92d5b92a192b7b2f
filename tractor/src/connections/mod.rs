//! Connections: where an actor listens, the channels it holds, and how it
//! dials other actors.
//!
//! An actor listens on its Unix socket (on this host) and, where the
//! transport policy gives it one, on TCP (for other hosts); see `ipc`.
//! Every opening runs under one deadline and a cap on openings in progress
//! (`openings`). It keeps one open channel per peer in a table, so that a portal to an
//! actor it already talks to reuses that channel. What an accepted or
//! dialed channel is *for* (a returning child, a registration) is not
//! decided here: the actor wires it to the service concerned.

mod openings;

use std::collections::{HashMap, HashSet};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::{NONCE, Secret};
use crate::error::{Error, Result};
use crate::ipc::Channel;
use crate::ipc::handshake::{self, Dialing, Opened, Pending};
use crate::ipc::local;
use crate::ipc::msg::Handshake;
use crate::ipc::transport::{Listener, Stream, Target};
use crate::ipc::unix_stream::LocalStream;
use crate::uid::ActorUid;
use openings::Openings;

/// One deadline for an opening, on both sides: connect, TLS and the
/// handshake together.
pub(crate) const OPENING_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Connections {
    me: ActorUid,
    secret: Secret,
    addr: OnceLock<String>,
    /// Socket files of ours, removed when we stop listening.
    sockets: Mutex<Vec<PathBuf>>,
    peers: Mutex<Peers>,
    /// Woken whenever a channel is recorded.
    peer_added: tokio::sync::Notify,
    openings: Openings,
    /// Stops the accept loops.
    listening: CancellationToken,
}

#[derive(Default)]
struct Peers {
    open: HashMap<Uuid, Channel>,
    /// Uuids whose opening is being completed: claimed, not yet recorded.
    claimed: HashSet<Uuid>,
}

/// The right to record the one channel to an actor (see
/// [`Connections::claim`]); dropping it gives the right up.
pub(crate) struct Claim<'a> {
    connections: &'a Connections,
    uuid: Uuid,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.connections.peers().claimed.remove(&self.uuid);
    }
}

impl Connections {
    pub(crate) fn new(me: ActorUid, secret: Secret) -> Self {
        Connections {
            me,
            secret,
            addr: OnceLock::new(),
            sockets: Mutex::default(),
            peers: Mutex::default(),
            peer_added: tokio::sync::Notify::new(),
            openings: Openings::default(),
            listening: CancellationToken::new(),
        }
    }

    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Where this actor accepts TCP connections, if it does.
    pub(crate) fn listen_addr(&self) -> Option<&str> {
        self.addr.get().map(String::as_str)
    }

    /// Who we are, for the opening of a channel to `to` (if we know whom
    /// we are dialing); `register` asks a registrar to keep us registered
    /// while the channel lives.
    pub(crate) fn introduction(&self, to: Option<Uuid>, register: bool) -> Handshake {
        Handshake::new(self.me.clone(), self.addr.get().cloned(), to, register)
    }

    /// Starts accepting on this actor's own Unix socket (where the
    /// transport uses them; `prebound`, if bound ahead, is put in place for
    /// it), on `tcp` and on `rendezvous` (a registrar's) until
    /// [`stop_listening`]; every connection is handed to `accept` on a task
    /// of its own, under the opening deadline and the cap on pending
    /// openings.
    ///
    /// [`stop_listening`]: Self::stop_listening
    pub(crate) fn listen<F, Fut>(
        &self,
        tcp: Option<TcpListener>,
        rendezvous: Option<(StdUnixListener, PathBuf)>,
        prebound: Option<local::Unplaced>,
        accept: F,
    ) -> Result<()>
    where
        F: Fn(Stream) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let mut listening = false;
        if let Some(tcp) = tcp {
            let _ = self.addr.set(tcp.local_addr()?.to_string());
            self.accept_loop(tcp, accept.clone());
            listening = true;
        }
        if crate::ipc::tls::transport()?.unix_sockets() {
            let path = local::actor_socket(self.me.uuid())?;
            let listener = match prebound {
                Some(prebound) => prebound.place(&path)?,
                None => local::bind(&path)?,
            };
            self.sockets().push(path);
            self.accept_loop(UnixListener::from_std(listener)?, accept.clone());
            listening = true;
        }
        if let Some((listener, path)) = rendezvous {
            self.sockets().push(path);
            self.accept_loop(UnixListener::from_std(listener)?, accept);
            listening = true;
        }
        if !listening {
            return Err(Error::other(
                "this actor has nowhere to listen: the transport policy rules out Unix sockets \
                 and gives it no TCP listener",
            ));
        }
        Ok(())
    }

    fn sockets(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn accept_loop<F, Fut>(&self, listener: impl Listener, accept: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let stop = self.listening.clone();
        let openings = self.openings.clone();
        tokio::spawn(async move {
            loop {
                // At the hard cap of openings in progress, what waits
                // waits in the kernel's backlog (see `openings`).
                let (room, next) = tokio::select! {
                    next = async {
                        let room = openings.room().await;
                        (room, listener.next().await)
                    } => next,
                    () = stop.cancelled() => return,
                };
                match next {
                    Ok(stream) => {
                        let opening = openings.admit(stream.remote_host(), room);
                        let accepted = accept(stream);
                        tokio::spawn(async move {
                            let outcome = tokio::select! {
                                outcome = tokio::time::timeout(OPENING_TIMEOUT, accepted) => {
                                    outcome.unwrap_or_else(|_| Err(Error::Protocol(format!(
                                        "no complete opening within {OPENING_TIMEOUT:?}"
                                    ))))
                                }
                                () = opening.evicted.cancelled() => Err(Error::Protocol(
                                    "dropped, still silent, to make room for newer connections"
                                        .into(),
                                )),
                            };
                            if let Err(err) = outcome {
                                tracing::debug!("refused a connection: {err}");
                            }
                        });
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

    /// Stops accepting connections and removes this actor's socket files:
    /// from now on, dialing this actor is refused.
    pub(crate) fn stop_listening(&self) {
        self.listening.cancel();
        for path in self.sockets().drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Checks a peer that dialed us (see `handshake::accept`): the
    /// transport's checks (TLS, the local peer's uid), then the opening.
    pub(crate) async fn accept(
        &self,
        stream: Stream,
        challenge_for: impl FnOnce(&Handshake) -> Option<[u8; NONCE]>,
    ) -> Result<(Opened, Pending)> {
        let stream = match stream {
            Stream::Tcp(tcp) => crate::ipc::tls::transport()?.accepted(tcp).await?,
            Stream::Unix(unix) => {
                local::check_peer(&unix)?;
                Stream::Unix(unix)
            }
            other => other,
        };
        handshake::accept(stream, &self.secret, &self.me, challenge_for).await
    }

    /// Dials `target` and opens a channel with it, all within the opening
    /// deadline; `challenge` is a spawned child's, for its parent.
    pub(crate) async fn dial(
        &self,
        target: Target<'_>,
        register: bool,
        challenge: Option<&[u8; NONCE]>,
    ) -> Result<Opened> {
        let stream = Stream::connect(target);
        let dialing = match challenge {
            Some(challenge) => Dialing::Child(challenge),
            None => Dialing::Anyone,
        };
        self.open_on(stream, target, register, dialing).await
    }

    /// Opens a spawned child's channel to its parent `target` over `link`,
    /// the connected Unix socket it was started with, instead of dialing
    /// it: proving itself over `challenge` and awaiting no welcome, as
    /// `parent` is who the link leads to (see `handshake`).
    pub(crate) async fn open_over(
        &self,
        link: std::os::fd::OwnedFd,
        target: Target<'_>,
        register: bool,
        challenge: &[u8; NONCE],
        parent: &Handshake,
    ) -> Result<Opened> {
        let stream = async {
            let link = std::os::unix::net::UnixStream::from(link);
            Ok(Stream::Unix(LocalStream::from_std(link)?))
        };
        let dialing = Dialing::Linked { challenge, parent };
        self.open_on(stream, target, register, dialing).await
    }

    /// The opening of a channel with `target` on the stream `stream`
    /// gives, all within the opening deadline.
    async fn open_on(
        &self,
        stream: impl Future<Output = Result<Stream>>,
        target: Target<'_>,
        register: bool,
        dialing: Dialing<'_>,
    ) -> Result<Opened> {
        let to = match target {
            Target::Actor { uuid, .. } => Some(uuid),
            Target::Registrar(_) => None,
        };
        let ours = self.introduction(to, register);
        let opening = async { handshake::dial(stream.await?, &ours, &self.secret, dialing).await };
        match tokio::time::timeout(OPENING_TIMEOUT, opening).await {
            Ok(opened) => opened,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no complete opening with {} within {OPENING_TIMEOUT:?}",
                    target.describe()
                ),
            )
            .into()),
        }
    }

    /// Claims the right to record the channel to actor `uuid`: `None` if a
    /// live channel (or an opening in progress) already speaks for it. A
    /// peer cannot take over another actor's place by claiming its uuid.
    pub(crate) fn claim(&self, uuid: Uuid) -> Option<Claim<'_>> {
        let mut peers = self.peers();
        // A channel whose peer has exited speaks for nobody, even before
        // its end of stream is read: a restarted child reclaims its uuid.
        let live = peers.open.get(&uuid).is_some_and(|c| !c.is_gone());
        if live || !peers.claimed.insert(uuid) {
            return None;
        }
        Some(Claim {
            connections: self,
            uuid,
        })
    }

    /// Whether an opening under `uuid` is being completed here.
    pub(crate) fn is_claimed(&self, uuid: Uuid) -> bool {
        self.peers().claimed.contains(&uuid)
    }

    /// Waits (up to the opening deadline) for a channel to `uuid` that
    /// another opening is completing.
    pub(crate) async fn wait_for_peer(&self, uuid: Uuid) -> Option<Channel> {
        let waited = tokio::time::timeout(OPENING_TIMEOUT, async {
            loop {
                let added = self.peer_added.notified();
                if let Some(channel) = self.peer(uuid) {
                    return channel;
                }
                added.await;
            }
        });
        waited.await.ok()
    }

    fn peers(&self) -> MutexGuard<'_, Peers> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an open channel as the one to its peer (its opening held
    /// the [`Claim`], or it is a channel we dialed).
    pub(crate) fn add_peer(&self, channel: &Channel) {
        self.peers()
            .open
            .insert(channel.peer().uuid(), channel.clone());
        self.peer_added.notify_waiters();
        // The channel may have closed before it was recorded.
        if channel.is_closed() {
            self.forget_peer(channel);
        }
    }

    /// Forgets a closed channel (unless a newer one to that peer replaced
    /// it).
    pub(crate) fn forget_peer(&self, channel: &Channel) {
        let mut peers = self.peers();
        let uuid = channel.peer().uuid();
        if peers
            .open
            .get(&uuid)
            .is_some_and(|known| known.same(channel))
        {
            peers.open.remove(&uuid);
        }
    }

    /// The open channel to actor `uuid`, if there is one (and its peer has
    /// not hung up).
    pub(crate) fn peer(&self, uuid: Uuid) -> Option<Channel> {
        self.peers()
            .open
            .get(&uuid)
            .filter(|channel| !channel.is_gone())
            .cloned()
    }

    /// Every open channel.
    pub(crate) fn all_peers(&self) -> Vec<Channel> {
        self.peers().open.values().cloned().collect()
    }
}
