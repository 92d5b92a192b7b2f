//! Opening a channel: prove the tree's secret both ways, dialer first,
//! over the whole conversation, then exchange [`Handshake`]s.
//!
//! ```text
//! dialer                                  acceptor
//!   Hello { magic, protocol, nonce_d }  ->
//!                                       <-  Challenge { nonce_a }
//!   Proof { who I am, HMAC(dial, T) }   ->
//!                                           (checks it; decides whether to keep the peer)
//!                                       <-  Welcome { who I am, HMAC(accept, T') }
//!   (checks it)
//! ```
//!
//! `T` is a hash of the transcript: every frame so far, the prover's own
//! introduction and, over TLS, key material exported from the TLS session
//! (see [`Transcript`]). A proof therefore holds for one conversation
//! only: a relay that swaps an introduction, replays a frame or splices two
//! connections (or two TLS sessions) together gets a proof that does not
//! check. The dialer proves first, so the acceptor — which anyone who can
//! connect may talk to — tells strangers nothing that would let them test
//! guesses of the secret offline.
//!
//! A spawned child skips the challenge: its parent put a fresh, single-use
//! challenge in its spawn spec, so the child's hello already carries its
//! proof (over that challenge and its nonce) and its introduction:
//!
//! ```text
//!   Hello { magic, protocol, nonce_d, early: who I am + HMAC(early, T) } ->
//!                                       <-  Welcome { who I am, HMAC(accept, T') }
//! ```
//!
//! A child *linked* to its parent (started with a socket pair only the two
//! of them hold, over which its spec and so the secret itself came) does
//! not wait for the welcome either: the link is private both ways, so a
//! proof from the parent would tell it nothing the spec did not, and it
//! knows the parent's introduction from the spec. It sends its hello and
//! goes straight on to its channel; its parent still checks the hello's
//! proof, and sends no welcome (see `Actor::accept`). That takes a round
//! trip off every linked spawn: the child's first answer can leave in the
//! write after its hello.
//!
//! The acceptor reads nothing but these small frames until the dialer has
//! proven itself; the whole opening, connect and TLS included, runs under
//! one deadline (see `connections`).

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::{NONCE, Secret, Transcript, nonce};
use crate::error::Error;
use crate::ipc::msg::{Handshake, MAGIC, PROTOCOL_VERSION};
use crate::ipc::transport::Stream;
use crate::uid::ActorUid;

/// A handshake frame is a few hundred bytes; refuse anything much larger.
const HANDSHAKE_LIMIT: usize = 4096;

const DIALER: &[u8] = b"tractor/dial";
const EARLY: &[u8] = b"tractor/early";
const ACCEPTOR: &[u8] = b"tractor/accept";

/// The frames of the opening exchange.
#[derive(Debug, Serialize, Deserialize)]
enum Opening {
    Hello {
        magic: [u8; 8],
        protocol: u32,
        nonce: [u8; NONCE],
        /// A spawned child's introduction and proof.
        early: Option<Box<Proven>>,
    },
    Challenge {
        nonce: [u8; NONCE],
    },
    Proof(Box<Proven>),
    Welcome(Box<Proven>),
    /// The acceptor will not open a channel with this dialer.
    Refused(Refusal),
}

/// An introduction and the proof that covers it.
#[derive(Debug, Serialize, Deserialize)]
struct Proven {
    peer: Handshake,
    proof: [u8; NONCE],
}

/// Why an acceptor refused a dialer (it says so only to a dialer whose
/// proof checked, but for `BadProof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// The proof did not check: another secret, or a relayed opening.
    BadProof,
    /// The dialer is the acceptor itself: its connection was relayed back.
    Itself,
    /// The dialer meant to reach another actor: its opening was relayed.
    NotMeant,
    /// Another live channel already speaks for that actor.
    UidInUse,
    /// A spawn challenge for a child this actor is not (or no longer)
    /// waiting for.
    NotExpected,
    /// The dialer asked to register with an actor that is not a registrar.
    NotRegistrar,
}

/// How the accepting side completes the opening (see [`Pending::welcome`]).
pub(crate) struct Pending {
    transcript: Transcript,
    secret: Secret,
    spawn: bool,
}

/// A connection whose peer has proven itself and introduced itself.
pub(crate) struct Opened {
    pub stream: Stream,
    pub peer: Handshake,
    /// Bytes the peer sent after its handshake, already read.
    pub leftover: BytesMut,
}

/// How a dialer opens: as anyone, or as a spawned child.
#[derive(Clone, Copy)]
pub(crate) enum Dialing<'a> {
    /// Challenged, then welcomed.
    Anyone,
    /// A spawned child proving itself over its spawn spec's challenge,
    /// then welcomed.
    Child(&'a [u8; NONCE]),
    /// A spawned child over its link (see the module docs): it proves
    /// itself over its challenge and takes `parent` as the parent's
    /// introduction, awaiting no welcome.
    Linked {
        challenge: &'a [u8; NONCE],
        parent: &'a Handshake,
    },
}

/// Opens a channel over `stream`, which we dialed (or which links a child
/// to its parent).
pub(crate) async fn dial(
    mut stream: Stream,
    ours: &Handshake,
    secret: &Secret,
    dialing: Dialing<'_>,
) -> Result<Opened, Error> {
    let challenge = match dialing {
        Dialing::Anyone => None,
        Dialing::Child(challenge) | Dialing::Linked { challenge, .. } => Some(challenge),
    };
    let peer = stream.peer();
    let mut buf = BytesMut::with_capacity(1024);
    let mut transcript = Transcript::new(&stream.binding()?);
    let nonce_d = nonce()?;
    let early = match challenge {
        Some(challenge) => {
            transcript.absorb(challenge);
            transcript.absorb(&nonce_d);
            let proof = secret.prove(EARLY, &transcript.with(&encode(ours)?));
            Some(Box::new(Proven {
                peer: ours.clone(),
                proof,
            }))
        }
        None => None,
    };
    let hello = Opening::Hello {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        nonce: nonce_d,
        early,
    };
    transcript.absorb(&send(&mut stream, &hello).await?);
    if let Dialing::Linked { parent, .. } = dialing {
        return Ok(Opened {
            stream,
            peer: parent.clone(),
            leftover: buf,
        });
    }
    if challenge.is_none() {
        let (challenge, body) = receive(&mut stream, &mut buf, &peer).await?;
        let Opening::Challenge { .. } = challenge else {
            return Err(answer_error(&peer, challenge, "a challenge"));
        };
        transcript.absorb(&body);
        let proof = Opening::Proof(Box::new(Proven {
            proof: secret.prove(DIALER, &transcript.with(&encode(ours)?)),
            peer: ours.clone(),
        }));
        transcript.absorb(&send(&mut stream, &proof).await?);
    }
    let (welcome, _) = receive(&mut stream, &mut buf, &peer).await?;
    let Opening::Welcome(welcome) = welcome else {
        return Err(answer_error(&peer, welcome, "a welcome"));
    };
    if !secret.check(
        ACCEPTOR,
        &transcript.with(&encode(&welcome.peer)?),
        &welcome.proof,
    ) {
        return Err(Error::Protocol(format!(
            "the actor at {peer} could not prove this tree's secret over this connection: it \
             belongs to another tree (programs that share a tree must share TRACTOR_SECRET or \
             TRACTOR_SECRET_FILE), or something relays the connection"
        )));
    }
    let reached = welcome.peer.uid.uuid();
    if ours.to.is_some_and(|to| to != reached) {
        return Err(Error::Protocol(format!(
            "{peer} is actor {}, not the one we dialed",
            welcome.peer.uid
        )));
    }
    if welcome.peer.uid == ours.uid && ours.to != Some(reached) {
        return Err(refused(&peer, Refusal::Itself));
    }
    Ok(Opened {
        stream,
        peer: welcome.peer,
        leftover: buf,
    })
}

/// Checks a peer that dialed actor `me`; the caller decides whether to keep
/// it and completes the opening with [`Pending::welcome`] (or refuses with
/// [`Pending::refuse`]). `challenge_for` looks up, without using it up,
/// the challenge given at spawn to the child a hello claims to be.
pub(crate) async fn accept(
    mut stream: Stream,
    secret: &Secret,
    me: &ActorUid,
    challenge_for: impl FnOnce(&Handshake) -> Option<[u8; NONCE]>,
) -> Result<(Opened, Pending), Error> {
    let peer = stream.peer();
    let mut buf = BytesMut::with_capacity(1024);
    let binding = stream.binding()?;
    let (hello, hello_body) = receive(&mut stream, &mut buf, &peer).await?;
    let Opening::Hello {
        magic,
        protocol,
        nonce: nonce_d,
        early,
    } = hello
    else {
        return Err(unexpected(&peer, "a hello"));
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
    let mut transcript = Transcript::new(&binding);
    let (proven, spawn) = match early {
        Some(early) => {
            let Some(challenge) = challenge_for(&early.peer) else {
                let _ = send(&mut stream, &Opening::Refused(Refusal::NotExpected)).await;
                return Err(Error::Protocol(format!(
                    "{peer} claims to be a child this actor is not expecting"
                )));
            };
            transcript.absorb(&challenge);
            transcript.absorb(&nonce_d);
            let proven = transcript.with(&encode(&early.peer)?);
            transcript.absorb(&hello_body);
            (
                check(secret, EARLY, &proven, *early, &mut stream, &peer).await?,
                true,
            )
        }
        None => {
            transcript.absorb(&hello_body);
            let challenge = Opening::Challenge { nonce: nonce()? };
            transcript.absorb(&send(&mut stream, &challenge).await?);
            let (proof, body) = receive(&mut stream, &mut buf, &peer).await?;
            let Opening::Proof(proof) = proof else {
                return Err(unexpected(&peer, "a proof"));
            };
            let proven = transcript.with(&encode(&proof.peer)?);
            transcript.absorb(&body);
            (
                check(secret, DIALER, &proven, *proof, &mut stream, &peer).await?,
                false,
            )
        }
    };
    // Meant for another actor: relayed here.
    if proven.to.is_some_and(|to| to != me.uuid()) {
        let _ = send(&mut stream, &Opening::Refused(Refusal::NotMeant)).await;
        return Err(Error::Protocol(format!(
            "{peer} meant to reach another actor: its opening was relayed here"
        )));
    }
    if proven.uid == *me && proven.to != Some(me.uuid()) {
        let _ = send(&mut stream, &Opening::Refused(Refusal::Itself)).await;
        return Err(Error::Protocol(format!(
            "{peer} is this actor itself: one of its connections was relayed back to it"
        )));
    }
    let opened = Opened {
        stream,
        peer: proven,
        leftover: buf,
    };
    Ok((
        opened,
        Pending {
            transcript,
            secret: secret.clone(),
            spawn,
        },
    ))
}

/// Checks `proven`'s proof for `role` over `transcript`; refuses it if wrong.
async fn check(
    secret: &Secret,
    role: &[u8],
    transcript: &[u8; NONCE],
    proven: Proven,
    stream: &mut Stream,
    peer: &str,
) -> Result<Handshake, Error> {
    if secret.check(role, transcript, &proven.proof) {
        return Ok(proven.peer);
    }
    let _ = send(stream, &Opening::Refused(Refusal::BadProof)).await;
    Err(Error::Protocol(format!(
        "{peer} could not prove this tree's secret"
    )))
}

impl Pending {
    /// Whether the peer proved itself over a spawn challenge: it is the
    /// child that challenge was made for.
    pub(crate) fn is_spawn(&self) -> bool {
        self.spawn
    }

    /// Completes the opening on the accepting side, proving the secret in
    /// turn: the welcome, as a whole frame, for the caller to write (at
    /// once, or ahead of the first frames of the channel, in one write with
    /// them: see `Channel::start`).
    pub(crate) fn welcome(self, ours: &Handshake) -> Result<Vec<u8>, Error> {
        let proof = self
            .secret
            .prove(ACCEPTOR, &self.transcript.with(&encode(ours)?));
        let welcome = Opening::Welcome(Box::new(Proven {
            peer: ours.clone(),
            proof,
        }));
        Ok(framed(&encode(&welcome)?))
    }

    /// Refuses the peer, telling it why.
    pub(crate) async fn refuse(self, stream: &mut Stream, why: Refusal) {
        let _ = send(stream, &Opening::Refused(why)).await;
    }
}

fn encode(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value)
        .map_err(|err| Error::Protocol(format!("cannot encode the opening: {err}")))
}

fn refused(peer: &str, why: Refusal) -> Error {
    Error::Protocol(match why {
        Refusal::BadProof => format!(
            "the actor at {peer} refused our proof: it belongs to a tree with another secret \
             (programs that share a tree must share TRACTOR_SECRET or TRACTOR_SECRET_FILE), or \
             something relays the connection"
        ),
        Refusal::Itself => format!(
            "the connection to {peer} came back to this actor itself: something at that address \
             relays connections"
        ),
        Refusal::NotMeant => {
            format!("the actor at {peer} is not the one we dialed: something relays the connection")
        }
        Refusal::UidInUse => {
            format!("the actor at {peer} already has a channel to an actor with our uid")
        }
        Refusal::NotExpected => {
            format!("the actor at {peer} is not expecting this child (it gave up waiting?)")
        }
        Refusal::NotRegistrar => {
            format!("the actor at {peer} is not a registrar, so it cannot register us")
        }
    })
}

fn answer_error(peer: &str, answer: Opening, expected: &str) -> Error {
    match answer {
        Opening::Refused(why) => refused(peer, why),
        _ => unexpected(peer, expected),
    }
}

fn unexpected(peer: &str, expected: &str) -> Error {
    Error::Protocol(format!(
        "{peer} broke the opening exchange: expected {expected}"
    ))
}

/// Sends one opening frame; returns its body, for the transcript.
async fn send(stream: &mut Stream, opening: &Opening) -> Result<Vec<u8>, Error> {
    let body = encode(opening)?;
    stream.write_all(&framed(&body)).await?;
    Ok(body)
}

/// `body` behind its length.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Receives one opening frame and its body.
async fn receive(
    stream: &mut Stream,
    buf: &mut BytesMut,
    peer: &str,
) -> Result<(Opening, bytes::Bytes), Error> {
    loop {
        if let Some(body) = crate::ipc::frame::split(buf, HANDSHAKE_LIMIT)? {
            let opening = postcard::from_bytes(&body).map_err(|err| {
                Error::Protocol(format!("unreadable handshake from {peer}: {err}"))
            })?;
            return Ok((opening, body));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ipc::unix_stream::LocalStream;

    const CHALLENGE: [u8; NONCE] = [7; NONCE];

    fn secret(words: &[u8]) -> Secret {
        Secret::for_root(Some(words)).unwrap()
    }

    /// A child linked to `parent`, over `stream`: its opening, and the
    /// bytes it writes right after it, as its first answer would be.
    async fn linked_child(stream: LocalStream, secret: &Secret, parent: &Handshake) -> Opened {
        let child = ActorUid::new("child");
        let ours = Handshake::new(child, None, Some(parent.uid.uuid()), false);
        let dialing = Dialing::Linked {
            challenge: &CHALLENGE,
            parent,
        };
        let opening = dial(Stream::Unix(stream), &ours, secret, dialing);
        // A hang here is the child waiting for a welcome no one sends.
        let mut opened = tokio::time::timeout(Duration::from_secs(5), opening)
            .await
            .expect("a linked child awaits no welcome")
            .unwrap();
        opened.stream.write_all(b"first answer").await.unwrap();
        opened
    }

    #[tokio::test]
    async fn a_linked_child_sends_its_hello_and_goes_on_and_its_parent_still_checks_it() {
        let tree = secret(b"the tree's secret");
        let parent_uid = ActorUid::new("parent");
        let parent = Handshake::new(parent_uid.clone(), None, None, false);
        let (child_end, parent_end) = LocalStream::pair().unwrap();
        let child = linked_child(child_end, &tree, &parent).await;
        assert_eq!(
            child.peer.uid, parent_uid,
            "the parent is who the link leads to"
        );
        assert!(child.leftover.is_empty());

        let accepted = accept(Stream::Unix(parent_end), &tree, &parent_uid, |hello| {
            (hello.uid.name() == "child").then_some(CHALLENGE)
        });
        let (mut opened, pending) = accepted.await.unwrap();
        assert!(pending.is_spawn(), "proven over the spawn challenge");
        assert_eq!(opened.peer.uid.name(), "child");
        // What the child wrote after its hello reaches the channel, in
        // order, whether it came in the hello's read or after.
        let mut after = opened.leftover.to_vec();
        while after.len() < b"first answer".len() {
            let mut more = [0u8; 64];
            let n = opened.stream.read(&mut more).await.unwrap();
            assert_ne!(n, 0, "the child's first answer is lost");
            after.extend_from_slice(&more[..n]);
        }
        assert_eq!(after, b"first answer");
    }

    #[tokio::test]
    async fn a_linked_child_with_another_secret_is_refused() {
        let parent_uid = ActorUid::new("parent");
        let parent = Handshake::new(parent_uid.clone(), None, None, false);
        let (child_end, parent_end) = LocalStream::pair().unwrap();
        let mut child = linked_child(child_end, &secret(b"another tree entirely"), &parent).await;
        let tree = secret(b"the tree's secret");
        let accepted = accept(Stream::Unix(parent_end), &tree, &parent_uid, |_| {
            Some(CHALLENGE)
        });
        let Err(Error::Protocol(why)) = accepted.await else {
            panic!("a hello proven with another secret was accepted");
        };
        assert!(why.contains("could not prove"), "{why}");
        // The child hears a refusal, not a welcome, and nothing else.
        let mut buf = BytesMut::new();
        let (refusal, _) = receive(&mut child.stream, &mut buf, "parent")
            .await
            .unwrap();
        assert!(
            matches!(refusal, Opening::Refused(Refusal::BadProof)),
            "{refusal:?}"
        );
    }
}
