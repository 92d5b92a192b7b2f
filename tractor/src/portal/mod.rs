//! Portals: handles for calling into another actor.
//!
//! A [`Portal`] wraps the channel to one actor. `portal.run(f::call(..))`
//! sends the call, waits for the answer on the same channel and decodes it,
//! so it reads like calling `f` locally. Any number of calls may be in
//! flight through one portal (or its clones) at once; dropping a call's
//! future cancels it in the remote actor.
//!
//! A portal from a spawn under a supervisor follows the child across its
//! restarts (see `lineage`): each call asks for the current process's
//! channel, waiting while a restart is under way. Any other portal holds
//! its one channel.

mod result_slot;

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::DeserializeOwned;

pub(crate) use result_slot::ResultSlot;

use crate::actor::Actor;
use crate::budget::{Budget, DEFAULT_GRACE};
use crate::call::{Call, ContextCall, StreamCall, decode};
use crate::children::SPAWN_TIMEOUT;
use crate::context::ContextHandle;
use crate::deadline;
use crate::error::{Error, Result};
use crate::ipc::Channel;
use crate::lineage::Lineage;
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
    uid: ActorUid,
    route: Route,
}

/// How a portal reaches its actor.
#[derive(Clone)]
enum Route {
    /// Always through this channel.
    Fixed(Channel),
    /// Through the current process of a supervised child.
    Follow(Arc<Lineage>),
}

impl Portal {
    pub(crate) fn new(actor: Actor, channel: Channel) -> Self {
        Portal {
            actor,
            uid: channel.peer().clone(),
            route: Route::Fixed(channel),
        }
    }

    /// A portal that follows a supervised child across its restarts.
    pub(crate) fn following(actor: Actor, lineage: Arc<Lineage>) -> Self {
        Portal {
            actor,
            uid: lineage.uid().clone(),
            route: Route::Follow(lineage),
        }
    }

    /// The channel to use now; for a supervised child, that of its
    /// current process, waiting for a restart under way.
    async fn channel(&self) -> Result<Channel> {
        // A call into a channel that is gone fails without waiting for
        // anything; a loop retrying it must still yield to the runtime
        // (and to its nursery, which may be cancelling it).
        tokio::task::coop::consume_budget().await;
        match &self.route {
            Route::Fixed(channel) => Ok(channel.clone()),
            Route::Follow(lineage) => lineage.current(SPAWN_TIMEOUT).await,
        }
    }

    /// The actor on the other side. A supervised child keeps its uid
    /// across restarts.
    pub fn uid(&self) -> &ActorUid {
        &self.uid
    }

    /// Where the actor on the other side accepts connections (`host:port`),
    /// as it announced when the channel opened (for a supervised child,
    /// its current or last process).
    pub fn addr(&self) -> Option<String> {
        let channel = match &self.route {
            Route::Fixed(channel) => Some(channel.clone()),
            Route::Follow(lineage) => lineage.latest(),
        };
        channel.and_then(|channel| channel.peer_addr().map(str::to_owned))
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
    ///
    /// With [`Call::timeout`] (or within a call being served with a
    /// deadline), no answer in time is an `Err` with
    /// [`Error::is_timeout`], once the remote task has been cancelled.
    pub async fn run<T: DeserializeOwned>(&self, call: Call<T>) -> Result<T> {
        let request = call.into_request();
        let args = request.args?;
        let deadline = deadline::for_call(request.timeout);
        let channel = self.channel().await?;
        let sending = channel.call(&request.name, &args, deadline);
        let pending = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, sending)
                .await
                .map_err(|_| Error::Timeout)??,
            None => sending.await?,
        };
        let answer = pending.within(deadline).await?;
        decode(&answer, crate::call::split_wire(&request.name).0)
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
        let first_by = deadline::for_call(request.timeout);
        let raw = RawStream::open(
            &self.channel().await?,
            &request.name,
            &request.args?,
            window,
            first_by,
        )
        .await?;
        Ok(RemoteStream::new(raw))
    }

    /// Opens a context with a `#[tractor::context]` function in the
    /// remote actor: resolves once the function has called `started`, with
    /// the handle of the context and the value it started with.
    ///
    /// An error the function raises (or its return) before `started`
    /// comes back here instead, and so does [`Error::Timeout`] when a
    /// [`ContextCall::timeout`] passes first (the function is then
    /// cancelled).
    ///
    /// ```
    /// use futures::{SinkExt, StreamExt};
    ///
    /// #[tractor::context]
    /// async fn doubler(ctx: tractor::Context<u32, u64, u64>) -> tractor::Result<String> {
    ///     ctx.started(2).await?;
    ///     let mut stream = ctx.open_stream().await?;
    ///     while let Some(n) = stream.next().await {
    ///         stream.send(n? * 2).await?;
    ///     }
    ///     Ok("done".to_string())
    /// }
    ///
    /// # async fn example(portal: tractor::Portal) -> tractor::Result<()> {
    /// let (cx, factor) = portal.open_context(doubler::call()).await?;
    /// assert_eq!(factor, 2);
    /// let mut stream = cx.open_stream().await?;
    /// stream.send(21).await?;
    /// assert_eq!(stream.next().await.transpose()?, Some(42));
    /// drop(stream);
    /// assert_eq!(cx.result().await?, "done");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_context<S, I, O, T>(
        &self,
        call: ContextCall<S, I, O, T>,
    ) -> Result<(ContextHandle<I, O, T>, S)>
    where
        S: DeserializeOwned,
        I: serde::Serialize,
        O: DeserializeOwned,
        T: DeserializeOwned,
    {
        let (request, window) = call.into_request();
        let args = request.args?;
        let deadline = deadline::for_call(request.timeout);
        let channel = self.channel().await?;
        let registering = channel.open_context(&request.name, &args, window);
        let (opened, started) = match deadline {
            None => registering.await?,
            Some(deadline) => tokio::time::timeout_at(deadline, registering)
                .await
                .map_err(|_| Error::Timeout)??,
        };
        // From here on, dropping this future drops the handle, which
        // cancels the function.
        let handle = ContextHandle::new(channel, window, opened);
        let started = match deadline {
            None => started.await,
            Some(deadline) => match tokio::time::timeout_at(deadline, started).await {
                Ok(started) => started,
                Err(_) => {
                    // Cancelled and acknowledged (or given up on after the
                    // grace): the function is gone.
                    let _ = handle.cancel().await;
                    return Err(Error::Timeout);
                }
            },
        };
        let value = started.unwrap_or_else(|_| {
            Err(Error::Disconnected {
                actor: self.uid().clone(),
            })
        })?;
        let value = decode(&value, crate::call::split_wire(&request.name).0)?;
        Ok((handle, value))
    }

    /// Asks the remote actor to cancel: it cancels everything it runs
    /// (its own children included), answers, and exits.
    ///
    /// Returns `Ok(true)` when the actor acknowledged, `Ok(false)` when it
    /// was already gone or did not answer within the grace period (if it is
    /// this actor's child, it is then killed). Either way, for a child of
    /// this actor, the process has been reaped when this returns.
    ///
    /// A supervised child cancelled this way stays down: no restart
    /// follows, and one under way stops.
    pub async fn cancel_actor(&self) -> Result<bool> {
        let channel = match &self.route {
            Route::Fixed(channel) => channel.clone(),
            Route::Follow(lineage) => {
                lineage.retire();
                match lineage.latest() {
                    Some(channel) => channel,
                    None => return Ok(false),
                }
            }
        };
        if let Some(child) = self.actor.child(self.uid().uuid()) {
            let acked = child.cancel(DEFAULT_GRACE).await;
            // Reaped, as promised, not merely gone.
            child.exited().await;
            return Ok(acked);
        }
        // Not our child: we cannot kill it, only wait for its answer, which
        // its budget makes come before the deadline.
        let budget = Budget::new(DEFAULT_GRACE);
        let ack = match channel.cancel_actor(budget.grace()) {
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
