//! Opening a channel: dial or accept, prove the tree's secret both ways,
//! then exchange [`Handshake`]s.
//!
//! ```text
//! dialer                                  acceptor
//!   Hello { magic, protocol, nonce_d }  ->
//!                                       <-  Challenge { nonce_a, HMAC(accept, nonce_d, nonce_a) }
//!   (checks the acceptor knows the secret)
//!   Proof { HMAC(dial, nonce_a, nonce_d), who I am } ->
//!                                           (checks the dialer knows it too)
//!                                       <-  Welcome { who I am }
//! ```
//!
//! A spawned child skips the first round trip: its parent put a fresh,
//! single-use challenge in its spawn spec, so the child's hello carries its
//! proof and its introduction, and the parent answers with its own proof:
//!
//! ```text
//!   Hello { magic, protocol, nonce_d, early: HMAC(dial, challenge, nonce_d) + who I am } ->
//!                                       <-  Accepted { HMAC(accept, nonce_d, challenge), who I am }
//! ```
//!
//! The secret never crosses the wire and fresh nonces make every answer
//! single-use (see [`auth`](crate::auth)). The acceptor reads nothing but
//! these small, time-limited frames until the dialer has proven itself: a
//! stranger, a stuck peer or another protocol is dropped before a channel
//! exists.

use std::time::Duration;

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::{NONCE, Secret, nonce};
use crate::error::Error;
use crate::ipc::frame;
use crate::ipc::msg::{Handshake, MAGIC, PROTOCOL_VERSION};
use crate::ipc::transport::Stream;

/// How long a peer has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A handshake frame is a few hundred bytes; refuse anything much larger.
const HANDSHAKE_LIMIT: usize = 4096;

const ACCEPTOR: &[u8] = b"tractor/accept";
const DIALER: &[u8] = b"tractor/dial";

/// The frames of the opening exchange.
#[derive(Debug, Serialize, Deserialize)]
enum Opening {
    Hello {
        magic: [u8; 8],
        protocol: u32,
        nonce: [u8; NONCE],
        /// A spawned child's proof over the challenge from its spec.
        early: Option<Box<Early>>,
    },
    Challenge {
        nonce: [u8; NONCE],
        proof: [u8; NONCE],
    },
    Proof {
        proof: [u8; NONCE],
        peer: Box<Handshake>,
    },
    Welcome(Box<Handshake>),
    /// The answer to an early proof.
    Accepted {
        proof: [u8; NONCE],
        peer: Box<Handshake>,
    },
    /// The acceptor checked the dialer's proof and it was wrong: the only
    /// case in which a dialer is told it has the wrong secret.
    Refused,
}

#[derive(Debug, Serialize, Deserialize)]
struct Early {
    proof: [u8; NONCE],
    peer: Handshake,
}

/// How the accepting side completes the opening (see [`Pending::finish`]).
pub(crate) enum Pending {
    Welcome,
    Accept { proof: [u8; NONCE] },
}

/// A connection whose peer has proven itself and introduced itself.
pub(crate) struct Opened {
    pub stream: Stream,
    pub peer: Handshake,
    /// Bytes the peer sent after its handshake, already read.
    pub leftover: BytesMut,
}

/// Dials the actor at `addr` (or at its Unix socket `local`) and opens a
/// channel with it.
pub(crate) async fn dial(
    addr: &str,
    local: Option<&str>,
    ours: &Handshake,
    secret: &Secret,
) -> Result<Opened, Error> {
    let stream = Stream::connect(addr, local).await?;
    over(stream, ours, secret).await
}

/// Opens a channel over a stream we dialed.
pub(crate) async fn over(
    stream: Stream,
    ours: &Handshake,
    secret: &Secret,
) -> Result<Opened, Error> {
    let peer = stream.peer();
    within(&peer, dialer(stream, ours, secret, &peer)).await
}

async fn dialer(
    mut stream: Stream,
    ours: &Handshake,
    secret: &Secret,
    peer: &str,
) -> Result<Opened, Error> {
    let mut buf = BytesMut::with_capacity(1024);
    let nonce_d = nonce()?;
    send(&mut stream, &hello(nonce_d, None)).await?;
    let Opening::Challenge {
        nonce: nonce_a,
        proof,
    } = receive(&mut stream, &mut buf, peer).await?
    else {
        return Err(unexpected(peer, "a challenge"));
    };
    if !secret.check(ACCEPTOR, &nonce_d, &nonce_a, &proof) {
        return Err(Error::Protocol(format!(
            "the actor at {peer} does not know this tree's secret; programs that share a tree \
             must share TRACTOR_SECRET (or TRACTOR_SECRET_FILE)"
        )));
    }
    let proof = Opening::Proof {
        proof: secret.prove(DIALER, &nonce_a, &nonce_d),
        peer: Box::new(ours.clone()),
    };
    send(&mut stream, &proof).await?;
    let peer_info = match receive(&mut stream, &mut buf, peer).await? {
        Opening::Welcome(info) => info,
        Opening::Refused => return Err(refused(peer)),
        _ => return Err(unexpected(peer, "a welcome")),
    };
    Ok(Opened {
        stream,
        peer: *peer_info,
        leftover: buf,
    })
}

fn hello(nonce: [u8; NONCE], early: Option<Box<Early>>) -> Opening {
    Opening::Hello {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        nonce,
        early,
    }
}

/// Opens a channel from a spawned child to its parent, proving the secret
/// over `challenge` (from the spawn spec) in the first message.
pub(crate) async fn dial_parent(
    addr: &str,
    local: Option<&str>,
    ours: &Handshake,
    secret: &Secret,
    challenge: &[u8; NONCE],
) -> Result<Opened, Error> {
    let mut stream = Stream::connect(addr, local).await?;
    let peer = stream.peer();
    within(&peer, async {
        let mut buf = BytesMut::with_capacity(1024);
        let nonce_d = nonce()?;
        let early = Early {
            proof: secret.prove(DIALER, challenge, &nonce_d),
            peer: ours.clone(),
        };
        send(&mut stream, &hello(nonce_d, Some(Box::new(early)))).await?;
        let (proof, info) = match receive(&mut stream, &mut buf, &peer).await? {
            Opening::Accepted { proof, peer: info } => (proof, info),
            Opening::Refused => return Err(refused(&peer)),
            _ => return Err(unexpected(&peer, "an acceptance")),
        };
        if !secret.check(ACCEPTOR, &nonce_d, challenge, &proof) {
            return Err(Error::Protocol(format!(
                "the parent at {peer} does not know this tree's secret"
            )));
        }
        Ok(Opened {
            stream,
            peer: *info,
            leftover: buf,
        })
    })
    .await
}

/// Checks a peer that dialed us; the caller completes the opening with
/// [`Pending::finish`] once it has decided to keep the connection.
/// `challenge_for` hands out (once) the challenge given to a child at spawn.
pub(crate) async fn accept(
    stream: Stream,
    secret: &Secret,
    challenge_for: impl FnOnce(&Handshake) -> Option<[u8; NONCE]>,
) -> Result<(Opened, Pending), Error> {
    let peer = stream.peer();
    within(&peer, acceptor(stream, secret, challenge_for, &peer)).await
}

async fn acceptor(
    mut stream: Stream,
    secret: &Secret,
    challenge_for: impl FnOnce(&Handshake) -> Option<[u8; NONCE]>,
    peer: &str,
) -> Result<(Opened, Pending), Error> {
    let mut buf = BytesMut::with_capacity(1024);
    let Opening::Hello {
        magic,
        protocol,
        nonce: nonce_d,
        early,
    } = receive(&mut stream, &mut buf, peer).await?
    else {
        return Err(unexpected(peer, "a hello"));
    };
    if magic != MAGIC {
        return Err(Error::Protocol(format!("{peer} is not a tractor actor")));
    }
    if protocol != PROTOCOL_VERSION {
        return Err(Error::Protocol(format!(
            "{peer} speaks protocol version {protocol}, this actor speaks {PROTOCOL_VERSION}; \
             build both from the same tractor version"
        )));
    }
    if let Some(early) = early {
        let Some(challenge) = challenge_for(&early.peer) else {
            return Err(Error::Protocol(format!(
                "{peer} claims to be a child this actor is not expecting"
            )));
        };
        if !secret.check(DIALER, &challenge, &nonce_d, &early.proof) {
            let _ = send(&mut stream, &Opening::Refused).await;
            return Err(Error::Protocol(format!(
                "{peer} does not know this tree's secret"
            )));
        }
        let pending = Pending::Accept {
            proof: secret.prove(ACCEPTOR, &nonce_d, &challenge),
        };
        let opened = Opened {
            stream,
            peer: early.peer,
            leftover: buf,
        };
        return Ok((opened, pending));
    }
    let nonce_a = nonce()?;
    let challenge = Opening::Challenge {
        nonce: nonce_a,
        proof: secret.prove(ACCEPTOR, &nonce_d, &nonce_a),
    };
    send(&mut stream, &challenge).await?;
    let Opening::Proof { proof, peer: info } = receive(&mut stream, &mut buf, peer).await? else {
        return Err(unexpected(peer, "a proof"));
    };
    if !secret.check(DIALER, &nonce_a, &nonce_d, &proof) {
        let _ = send(&mut stream, &Opening::Refused).await;
        return Err(Error::Protocol(format!(
            "{peer} does not know this tree's secret"
        )));
    }
    let opened = Opened {
        stream,
        peer: *info,
        leftover: buf,
    };
    Ok((opened, Pending::Welcome))
}

impl Pending {
    /// Whether the peer proved itself over a spawn challenge: it is the
    /// child that challenge was made for.
    pub(crate) fn is_spawn(&self) -> bool {
        matches!(self, Pending::Accept { .. })
    }

    /// Completes the opening on the accepting side.
    pub(crate) async fn finish(self, stream: &mut Stream, ours: &Handshake) -> Result<(), Error> {
        let last = match self {
            Pending::Welcome => Opening::Welcome(Box::new(ours.clone())),
            Pending::Accept { proof } => Opening::Accepted {
                proof,
                peer: Box::new(ours.clone()),
            },
        };
        send(stream, &last).await
    }
}

async fn within<T>(
    peer: &str,
    opening: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, opening)
        .await
        .map_err(|_| {
            Error::Protocol(format!(
                "no handshake from {peer} within {HANDSHAKE_TIMEOUT:?}"
            ))
        })?
}

fn refused(peer: &str) -> Error {
    Error::Protocol(format!(
        "the actor at {peer} refused our proof: it belongs to a tree with another secret; \
         programs that share a tree must share TRACTOR_SECRET (or TRACTOR_SECRET_FILE)"
    ))
}

fn unexpected(peer: &str, expected: &str) -> Error {
    Error::Protocol(format!(
        "{peer} broke the opening exchange: expected {expected}"
    ))
}

async fn send(stream: &mut Stream, opening: &Opening) -> Result<(), Error> {
    let mut buf = BytesMut::new();
    frame::write(&mut buf, opening, |_| Ok(()))?;
    stream.write_all(&buf).await?;
    Ok(())
}

async fn receive<T: DeserializeOwned>(
    stream: &mut Stream,
    buf: &mut BytesMut,
    peer: &str,
) -> Result<T, Error> {
    loop {
        if let Some(frame) = frame::split(buf, HANDSHAKE_LIMIT)? {
            return postcard::from_bytes(&frame).map_err(|err| {
                Error::Protocol(format!("unreadable handshake from {peer}: {err}"))
            });
        }
        if stream.read_buf(buf).await? == 0 {
            // Not a refusal (that is `Refused`): most likely it is exiting.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{peer} closed the connection during the handshake"),
            )
            .into());
        }
    }
}

/// Decodes `frame` as an opening message (for fuzzing).
pub(crate) fn decode_untrusted(frame: &[u8]) {
    let _ = postcard::from_bytes::<Opening>(frame);
}
