//! The wire types: the envelope of every frame and the error form.
//!
//! The envelope decodes without the user's types: arguments, return values
//! and errors follow it in the frame as postcard bytes (see
//! [`frame`](super::frame)). Adding a variant is a protocol change: bump
//! [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, RemoteActorError};
use crate::uid::ActorUid;

/// Spoken by both ends of a channel; checked in the handshake.
pub(crate) const PROTOCOL_VERSION: u32 = 6;

/// Opens every connection, so that a stray connection is told apart from
/// an outdated tractor peer.
pub(crate) const MAGIC: [u8; 8] = *b"tractor\0";

/// The envelope at the start of every frame.
///
/// Every frame concerns one call (or stream, or context), named by the id
/// its caller chose; which side sent it is part of the kind, so the two
/// ends' ids never mix. Items travel in batches: `n` postcard values one
/// after the other (postcard is self-delimiting), so a run of small items
/// costs one envelope.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Msg<'a> {
    /// Run remote function `func`; payload: its postcard-encoded arguments.
    /// `timeout_ms`: the caller's deadline, as time left when sent.
    Call {
        id: u64,
        #[serde(borrow)]
        func: &'a str,
        timeout_ms: Option<u32>,
    },
    /// Open stream `id` from remote function `func`, granting `window`
    /// items and `window_bytes` bytes of credit; payload: the arguments.
    OpenStream {
        id: u64,
        #[serde(borrow)]
        func: &'a str,
        window: u32,
        window_bytes: u32,
    },
    /// Open context `id` with remote function `func`, each side granting
    /// the other `window` items and `window_bytes` bytes of credit;
    /// payload: the arguments.
    OpenContext {
        id: u64,
        #[serde(borrow)]
        func: &'a str,
        window: u32,
        window_bytes: u32,
    },
    /// Call `id` returned (a context: its function did); payload: the value.
    Return { id: u64 },
    /// Context `id`'s function called `started`, granting its caller
    /// `window` items and `window_bytes` bytes of credit (what the caller
    /// asked for, within the callee's own bounds); payload: the value.
    Started {
        id: u64,
        window: u32,
        window_bytes: u32,
    },
    /// Stream (or context) `id` sent `n` items to its caller; payload:
    /// the items.
    Yield { id: u64, n: u32 },
    /// The caller of context `id` sent `n` items; payload: the items.
    Push { id: u64, n: u32 },
    /// Stream `id` ended normally; for a context: its function sends no
    /// more items (`hangup`: and reads none: it dropped its stream).
    Stop { id: u64, hangup: bool },
    /// The caller of context `id` sends no more items (`hangup`: and reads
    /// none).
    PushEnd { id: u64, hangup: bool },
    /// The consumer of stream (or context) `id` took `n` more items, of
    /// `bytes` bytes: the function may send as many more.
    Credit { id: u64, n: u32, bytes: u32 },
    /// The function of context `id` took `n` more of its caller's items,
    /// of `bytes` bytes.
    PushCredit { id: u64, n: u32, bytes: u32 },
    /// Call, stream or context `id` failed; payload: a [`WireError`].
    Error { id: u64 },
    /// The caller gave up on call (or stream, or context) `id`; the
    /// callee answers with an `Error` once it has dropped the task.
    Cancel { id: u64 },
    /// Cancel the whole actor within `grace_ms`, then answer `Return { id }`.
    CancelActor { id: u64, grace_ms: u32 },
    /// Sent to a registrar over the registration channel: the sender is
    /// going, unregister it now; answered `Return { id }`.
    Leave { id: u64 },
    /// Nothing but "still here": a channel between hosts that has sent
    /// nothing for a while (see `heartbeat`).
    Heartbeat,
}

/// Who is on the other end of a channel (exchanged once the opening has
/// proven both sides, see `handshake`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Handshake {
    pub uid: ActorUid,
    /// Where the peer accepts TCP connections, if it does. On its host it
    /// is reached through its Unix socket, whose path follows from its
    /// uuid (see `ipc::local`): a peer never names a path.
    pub addr: Option<String>,
    pub pid: u32,
    /// The actor the dialer means to reach, when it knows it. Covered by
    /// the dialer's proof, so an opening delivered to another actor (a
    /// relay) is refused; and an actor accepts a channel from itself only
    /// when it meant to reach itself.
    pub to: Option<uuid::Uuid>,
    /// Sent to a registrar: keep `uid -> addr` registered while this channel
    /// lives.
    pub register: bool,
}

impl Handshake {
    pub(crate) fn new(
        uid: ActorUid,
        addr: Option<String>,
        to: Option<uuid::Uuid>,
        register: bool,
    ) -> Self {
        Handshake {
            uid,
            addr,
            to,
            pid: std::process::id(),
            register,
        }
    }
}

/// How an error crosses the wire.
///
/// On the wire the tree is flattened (pre-order, see [`FlatErrors`]) so that
/// decoding never recurses, and its depth is bounded: a hostile peer cannot
/// overflow the stack with a deeply nested error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "FlatErrors", try_from = "FlatErrors")]
pub(crate) enum WireError {
    Remote(RemoteActorError),
    Multi(Vec<WireError>),
    Cancelled,
    Timeout,
}

/// Deeper error trees than this are refused (nurseries nest far less).
const MAX_ERROR_DEPTH: usize = 64;

#[derive(Serialize, Deserialize)]
struct FlatErrors(Vec<FlatNode>);

#[derive(Serialize, Deserialize)]
enum FlatNode {
    Remote(RemoteActorError),
    /// A `Multi` whose children are the next `n` subtrees.
    Multi(u32),
    Cancelled,
    Timeout,
}

impl From<WireError> for FlatErrors {
    fn from(error: WireError) -> Self {
        let mut nodes = Vec::new();
        let mut todo = vec![error];
        while let Some(error) = todo.pop() {
            match error {
                WireError::Remote(remote) => nodes.push(FlatNode::Remote(remote)),
                WireError::Cancelled => nodes.push(FlatNode::Cancelled),
                WireError::Timeout => nodes.push(FlatNode::Timeout),
                WireError::Multi(children) => {
                    nodes.push(FlatNode::Multi(children.len() as u32));
                    todo.extend(children.into_iter().rev());
                }
            }
        }
        FlatErrors(nodes)
    }
}

impl TryFrom<FlatErrors> for WireError {
    type Error = String;

    fn try_from(flat: FlatErrors) -> Result<Self, String> {
        // Rebuild bottom-up: walking the pre-order list backwards, every
        // `Multi(n)` finds its n children on top of the stack.
        let mut stack: Vec<(WireError, usize)> = Vec::new();
        for node in flat.0.into_iter().rev() {
            match node {
                FlatNode::Remote(remote) => stack.push((WireError::Remote(remote), 1)),
                FlatNode::Cancelled => stack.push((WireError::Cancelled, 1)),
                FlatNode::Timeout => stack.push((WireError::Timeout, 1)),
                FlatNode::Multi(n) => {
                    let n = n as usize;
                    if n == 0 || n > stack.len() {
                        return Err("malformed error tree".into());
                    }
                    let children = stack.split_off(stack.len() - n);
                    let depth = 1 + children.iter().map(|(_, d)| *d).max().unwrap_or(0);
                    if depth > MAX_ERROR_DEPTH {
                        return Err(format!("error tree deeper than {MAX_ERROR_DEPTH}"));
                    }
                    let children = children.into_iter().rev().map(|(e, _)| e).collect();
                    stack.push((WireError::Multi(children), depth));
                }
            }
        }
        match (stack.pop(), stack.is_empty()) {
            (Some((error, _)), true) => Ok(error),
            _ => Err("malformed error tree".into()),
        }
    }
}

impl WireError {
    /// The form in which actor `me` passes `error` to its caller: remote
    /// errors are relayed as themselves, local ones become remote errors
    /// raised in `me`.
    pub(crate) fn relay(error: &Error, me: &ActorUid) -> Self {
        match error {
            Error::Remote(remote) => WireError::Remote(remote.clone().relayed_by(me)),
            Error::Multi(errors) => {
                WireError::Multi(errors.iter().map(|e| WireError::relay(e, me)).collect())
            }
            Error::Cancelled => WireError::Cancelled,
            Error::Timeout => WireError::Timeout,
            local => WireError::Remote(
                RemoteActorError::new(local.kind_name(), local.to_string(), me.clone())
                    .with_sources(sources_of(local)),
            ),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        match self {
            WireError::Remote(remote) => Error::Remote(remote),
            WireError::Multi(errors) => {
                Error::Multi(errors.into_iter().map(WireError::into_error).collect())
            }
            WireError::Cancelled => Error::Cancelled,
            WireError::Timeout => Error::Timeout,
        }
    }
}

/// The messages of `error.source()`, outermost first.
pub(crate) fn sources_of(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut sources = Vec::new();
    let mut next = error.source();
    while let Some(source) = next {
        sources.push(source.to_string());
        next = source.source();
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(message: &str) -> WireError {
        WireError::Remote(RemoteActorError::new("E", message, ActorUid::new("a")))
    }

    #[test]
    fn error_trees_round_trip_in_order() {
        let tree = WireError::Multi(vec![
            remote("1"),
            WireError::Multi(vec![remote("2"), WireError::Cancelled]),
            remote("3"),
        ]);
        let bytes = postcard::to_allocvec(&tree).unwrap();
        let back: WireError = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(
            format!("{:?}", back.into_error()),
            format!("{:?}", tree.into_error())
        );
    }

    #[test]
    fn deep_or_malformed_trees_are_refused() {
        let deep = FlatErrors(
            (0..1000)
                .map(|_| FlatNode::Multi(1))
                .chain([FlatNode::Cancelled])
                .collect(),
        );
        let bytes = postcard::to_allocvec(&deep).unwrap();
        assert!(postcard::from_bytes::<WireError>(&bytes).is_err());
        let dangling = postcard::to_allocvec(&FlatErrors(vec![FlatNode::Multi(2)])).unwrap();
        assert!(postcard::from_bytes::<WireError>(&dangling).is_err());
    }
}
