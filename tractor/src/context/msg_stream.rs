//! [`MsgStream`]: one side of a context's two-way stream.

use std::any::Any;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use futures::{Sink, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ipc::channel::Direction;
use crate::ipc::channel::StreamInbox;
use crate::ipc::credit::Window;
use crate::ipc::{Channel, Credit};
use crate::stream::inbox::{Ended, Inbox};
use crate::stream::outlet::Outlet;

/// One side of a context's two-way stream: receives `Rx`s, sends `Tx`s.
///
/// A [`futures::Stream`] of `Result<Rx>` and a [`futures::Sink`] of `Tx`,
/// so `StreamExt::next`, `SinkExt::send` and `StreamExt::split` (to read
/// and write from two tasks) all work.
///
/// - **Flow control**: each direction has a credit window
///   ([`ContextCall::window`](crate::ContextCall::window)); a sender that
///   is that far ahead of its reader waits in `send`, nobody is overrun.
/// - **Batching**: items are encoded into a batch that goes out as one
///   frame on flush. `SinkExt::send` flushes every item; `feed` (then
///   `flush`), `send_all` and `forward` send many items per frame, which
///   is much faster for small items.
/// - **Closing**: `SinkExt::close` ends this side's sending only: the
///   peer's `next()` is `None` after the items already sent, and this side
///   may still receive.
/// - **Dropping** it ends both directions for this side: the peer reads
///   the items already sent and then `None`, and its sends fail with
///   [`Error::StreamClosed`].
///
/// An error raised in the context's function after `started` arrives on
/// the caller's stream as an `Err` item, after the items sent before it.
///
/// ```
/// use futures::{SinkExt, StreamExt};
///
/// #[tractor::context]
/// async fn shout(ctx: tractor::Context<(), String, String>) -> tractor::Result<()> {
///     ctx.started(()).await?;
///     let mut stream = ctx.open_stream().await?;
///     while let Some(line) = stream.next().await {
///         stream.send(line?.to_uppercase()).await?;
///     }
///     Ok(())
/// }
///
/// # async fn example(portal: tractor::Portal) -> tractor::Result<()> {
/// let (cx, ()) = portal.open_context(shout::call()).await?;
/// let mut stream = cx.open_stream().await?;
/// stream.send("hello".to_string()).await?;
/// assert_eq!(stream.next().await.transpose()?.as_deref(), Some("HELLO"));
/// drop(stream);
/// cx.result().await?;
/// # Ok(())
/// # }
/// ```
pub struct MsgStream<Rx, Tx> {
    inbox: Inbox,
    outlet: Outlet,
    owner: Owner,
    /// This side's end went out (dropped, or its reading broke).
    hung_up: bool,
    _types: PhantomData<fn(Tx) -> Rx>,
}

/// Whose side of the context a stream is.
pub(crate) enum Owner {
    /// The caller's: the stream keeps the context alive.
    Caller {
        _context: Arc<dyn Any + Send + Sync>,
    },
    /// The function's: its end may wait for the function's outcome.
    Callee(Arc<dyn EndDeferral>),
}

/// The function's side of a context decides when a dropped stream's end
/// goes out: a stream dropped as the function returns an error must not
/// end the caller's stream before that error does.
pub(crate) trait EndDeferral: Send + Sync {
    /// `true` if the end was left for the function's runner to send.
    fn defer_end(&self) -> bool;
}

/// One side's stream before it is opened: where the other side's items
/// wait (within the window), and what was granted for them.
pub(crate) type Unopened = Mutex<Option<StreamInbox>>;

/// One side of context `id` on `channel`, as its owner keeps it.
pub(crate) struct Side<'a> {
    pub(crate) channel: &'a Channel,
    pub(crate) id: u64,
    pub(crate) window: Window,
    /// Which way this side's items go.
    pub(crate) sends: Direction,
    /// What the other side lets this one send.
    pub(crate) credit: &'a Arc<Credit>,
    pub(crate) unopened: &'a Unopened,
}

impl<Rx, Tx> MsgStream<Rx, Tx> {
    /// Opens `side`'s stream; [`Error::Misuse`] if it was opened before.
    pub(crate) fn open(side: Side<'_>, owner: Owner) -> Result<Self> {
        let taken = side
            .unopened
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some((items, granted)) = taken else {
            return Err(Error::Misuse(
                "this context's stream is already open: each side opens it once (split it \
                 with StreamExt::split to use it from two tasks)"
                    .into(),
            ));
        };
        let receives = match side.sends {
            Direction::ToCaller => Direction::ToCallee,
            Direction::ToCallee => Direction::ToCaller,
        };
        let (channel, id) = (side.channel.clone(), side.id);
        Ok(MsgStream {
            inbox: Inbox::new(channel.clone(), id, receives, items, granted, side.window),
            outlet: Outlet::new(channel, id, side.sends, side.credit.clone()),
            owner,
            hung_up: false,
            _types: PhantomData,
        })
    }
}

impl<Rx: DeserializeOwned, Tx> Stream for MsgStream<Rx, Tx> {
    type Item = Result<Rx>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Rx>>> {
        let polled = self.inbox.poll_next(cx);
        if self.inbox.ended() == Ended::Broken && !self.hung_up {
            // An item that did not decode: the rest cannot be read, so
            // the sender is told, as if this side had dropped the stream.
            self.hang_up();
        }
        polled
    }
}

impl<Rx, Tx: Serialize> Sink<Tx> for MsgStream<Rx, Tx> {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        self.outlet.poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Tx) -> Result<()> {
        self.outlet.start_send(&item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        self.outlet.poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        self.outlet.poll_close(cx)
    }
}

impl<Rx, Tx> MsgStream<Rx, Tx> {
    /// Ends both directions for this side.
    fn hang_up(&mut self) {
        self.hung_up = true;
        let deferred = match &self.owner {
            Owner::Callee(deferral) => deferral.defer_end(),
            Owner::Caller { .. } => false,
        };
        self.outlet.hang_up(!deferred);
    }
}

impl<Rx, Tx> Drop for MsgStream<Rx, Tx> {
    fn drop(&mut self) {
        if !self.hung_up {
            self.hang_up();
        }
    }
}

impl<Rx, Tx> std::fmt::Debug for MsgStream<Rx, Tx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgStream")
            .field("peer", self.inbox.channel().peer())
            .field("id", &self.inbox.id())
            .field("receives", &std::any::type_name::<Rx>())
            .field("sends", &std::any::type_name::<Tx>())
            .finish_non_exhaustive()
    }
}
