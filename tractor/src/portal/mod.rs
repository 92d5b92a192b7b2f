//! Portals: handles for calling into another actor.
//!
//! A [`Portal`] wraps the channel to one actor. `portal.run(f::call(..))`
//! sends the call, waits for the answer on the same channel and decodes it,
//! so it reads like calling `f` locally. Any number of calls may be in
//! flight through one portal (or its clones) at once; dropping a call's
//! future cancels it in the remote actor.

mod result_slot;

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::DeserializeOwned;

pub(crate) use result_slot::ResultSlot;

use crate::actor::Actor;
use crate::budget::{Budget, DEFAULT_GRACE};
use crate::call::{Call, StreamCall};
use crate::error::{Error, Result};
use crate::ipc::Channel;
use crate::stream::{RawStream, RemoteStream};
use crate::uid::ActorUid;

/// A handle for calling functions in another actor.
///
/// Cheap to clone; `Send` and `Sync`; every method takes `&self`.
///
/// ```
/// #[tractor::rpc]
/// async fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// # async fn example(portal: tractor::Portal) -> tractor::Result<()> {
/// let four = portal.run(double::call(2)).await?;
/// assert_eq!(four, 4);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Portal {
    actor: Actor,
    channel: Channel,
}

impl Portal {
    pub(crate) fn new(actor: Actor, channel: Channel) -> Self {
        Portal { actor, channel }
    }

    /// The actor on the other side.
    pub fn uid(&self) -> &ActorUid {
        self.channel.peer()
    }

    /// Where the actor on the other side accepts connections (`host:port`),
    /// as it announced when the channel opened.
    pub fn addr(&self) -> Option<&str> {
        self.channel.peer_addr()
    }

    /// The Unix socket the actor on the other side listens on, if it is
    /// on this host: a file in this user's private socket directory, named
    /// after the actor's uuid.
    pub fn local_socket(&self) -> Option<std::path::PathBuf> {
        crate::ipc::local::existing_actor_socket(self.uid().uuid())
    }

    /// Runs `call` in the remote actor and returns what it returned.
    ///
    /// An `Err` the function returned, or a panic in it, comes back as
    /// [`Error::Remote`] with the error's type name, message and the actor
    /// it was raised in. Dropping the returned future cancels the call.
    pub async fn run<T: DeserializeOwned>(&self, call: Call<T>) -> Result<T> {
        let request = call.into_request();
        let args = request.args?;
        let answer = self.channel.call(&request.name, &args).await?.await?;
        decode(&answer, &request.name)
    }

    /// Opens a stream of `call` in the remote actor.
    ///
    /// The remote function starts at once and produces up to the call's
    /// window of items ahead of what this side has taken. Any failure,
    /// including an error opening the stream (the function is not exposed,
    /// say), arrives as an `Err` item.
    pub async fn open_stream<T: DeserializeOwned>(
        &self,
        call: StreamCall<T>,
    ) -> Result<RemoteStream<T>> {
        let (request, window) = call.into_request();
        let raw = RawStream::open(&self.channel, &request.name, &request.args?, window).await?;
        Ok(RemoteStream::new(raw))
    }

    /// Asks the remote actor to cancel: it cancels everything it runs
    /// (its own children included), answers, and exits.
    ///
    /// Returns `Ok(true)` when the actor acknowledged, `Ok(false)` when it
    /// was already gone or did not answer within the grace period (if it is
    /// this actor's child, it is then killed). Either way, for a child of
    /// this actor, the process has been reaped when this returns.
    pub async fn cancel_actor(&self) -> Result<bool> {
        if let Some(child) = self.actor.child(self.uid().uuid()) {
            return Ok(child.cancel(DEFAULT_GRACE).await);
        }
        // Not our child: we cannot kill it, only wait for its answer, which
        // its budget makes come before the deadline.
        let budget = Budget::new(DEFAULT_GRACE);
        let ack = match self.channel.cancel_actor(budget.grace()) {
            Ok(ack) => ack,
            Err(Error::Disconnected { .. }) => return Ok(false),
            Err(err) => return Err(err),
        };
        match tokio::time::timeout_at(budget.deadline(), ack).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(Error::Disconnected { .. })) | Err(_) => Ok(false),
            Ok(Err(err)) => Err(err),
        }
    }
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal").field("actor", self.uid()).finish()
    }
}

pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8], call: &str) -> Result<T> {
    postcard::from_bytes(payload).map_err(|err| {
        Error::codec(
            format!("the answer of {call} as {}", std::any::type_name::<T>()),
            err,
        )
    })
}

/// The portal to an actor started with
/// [`run_in_actor`](crate::ActorNursery::run_in_actor), plus the result of
/// the call it was started with.
///
/// Derefs to [`Portal`], so the actor can be called while (and after) it
/// runs its first call. Dropping a `RunPortal` neither cancels the actor
/// nor hides its error: the nursery still reports it.
pub struct RunPortal<O> {
    portal: Portal,
    slot: Arc<ResultSlot>,
    _output: PhantomData<fn() -> O>,
}

impl<O> RunPortal<O> {
    pub(crate) fn new(portal: Portal, slot: Arc<ResultSlot>) -> Self {
        RunPortal {
            portal,
            slot,
            _output: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> RunPortal<T> {
    /// Waits for the call's result.
    ///
    /// The first call takes the value; a later one answers
    /// [`Error::ResultTaken`]. If the actor failed, its error comes here
    /// first, and then the nursery body is cancelled at its next await.
    pub async fn result(&self) -> Result<T> {
        let answer = self.slot.take_value().await?;
        decode(&answer, "the actor's main call")
    }
}

impl<T: DeserializeOwned> RunPortal<RemoteStream<T>> {
    /// The stream the actor's main call produces.
    ///
    /// Consume it inside the nursery body: one the body never takes is
    /// drained (read and discarded) when the body ends, so that the actor
    /// can finish. The first call takes the stream; a later one answers
    /// [`Error::ResultTaken`].
    pub async fn result(&self) -> Result<RemoteStream<T>> {
        self.slot.take_stream().map(RemoteStream::new)
    }
}

impl<O> Deref for RunPortal<O> {
    type Target = Portal;

    fn deref(&self) -> &Portal {
        &self.portal
    }
}

impl<O> std::fmt::Debug for RunPortal<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunPortal")
            .field("actor", self.uid())
            .finish_non_exhaustive()
    }
}
