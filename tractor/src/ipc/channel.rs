//! A channel: one connection between two actors, multiplexing any number of
//! calls in both directions.
//!
//! Every call carries an id chosen by the caller. Our own outgoing calls
//! wait in `pending` until a `Return` or `Error` with their id arrives;
//! calls the peer made to us are tracked in `serving` so that a `Cancel`
//! (or the peer going away) stops them. Frames are written by the
//! connection's single writer task (see [`Outbox`]) and read by its single
//! reader task (see [`reader`](super::reader)).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::ipc::handshake::Opened;
use crate::ipc::msg::{Handshake, Msg, WireError};
use crate::ipc::outbox::Outbox;
use crate::ipc::{frame, reader};
use crate::uid::ActorUid;

/// What an actor does with the frames its peers send it.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// The peer calls remote function `func` as call `id`.
    fn call(&self, channel: &Channel, id: u64, func: &str, args: Bytes);
    /// The peer asks this whole actor to cancel, answering call `id` when
    /// done.
    fn cancel_actor(&self, channel: &Channel, id: u64, grace: Duration);
    /// The channel closed (either side, for any reason).
    fn closed(&self, channel: &Channel);
}

/// A handle on an open channel; cheap to clone.
#[derive(Clone)]
pub(crate) struct Channel(Arc<Shared>);

struct Shared {
    peer: Handshake,
    outbox: Outbox,
    next_id: AtomicU64,
    calls: Mutex<Calls>,
    closed: CancellationToken,
}

#[derive(Default)]
struct Calls {
    /// Our calls awaiting their answer.
    pending: HashMap<u64, oneshot::Sender<Result<Bytes, Error>>>,
    /// The peer's calls we are running.
    serving: HashMap<u64, CancellationToken>,
    /// Set once, under this lock, so no call is registered after the
    /// channel closed.
    closed: bool,
}

impl Channel {
    /// Starts the reader and writer tasks of a handshaken connection.
    pub(crate) fn start(opened: Opened, inbound: Arc<dyn Inbound>) -> Channel {
        let Opened {
            stream,
            peer,
            leftover,
        } = opened;
        let channel = Channel(Arc::new(Shared {
            peer,
            outbox: Outbox::new(),
            next_id: AtomicU64::new(1),
            calls: Mutex::new(Calls::default()),
            closed: CancellationToken::new(),
        }));
        let (read_half, write_half) = stream.into_split();
        let writer = channel.clone();
        tokio::spawn(async move {
            if let Err(err) = writer.0.outbox.run_writer(write_half).await {
                tracing::debug!(peer = %writer.peer(), "write failed: {err}");
            }
            writer.close();
        });
        let reader = channel.clone();
        tokio::spawn(async move {
            reader::run(read_half, leftover, &reader, &*inbound).await;
            reader.close();
            inbound.closed(&reader);
        });
        channel
    }

    /// Whether both handles are the same channel.
    pub(crate) fn same(&self, other: &Channel) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn peer(&self) -> &ActorUid {
        &self.0.peer.uid
    }

    pub(crate) fn peer_registers(&self) -> bool {
        self.0.peer.register
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.closed.is_cancelled()
    }

    /// Resolves once the channel has closed.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.0.closed.clone().cancelled_owned()
    }

    /// Closes the channel: no more frames are sent (what is queued still
    /// goes out), pending calls fail, served calls are cancelled.
    pub(crate) fn close(&self) {
        let calls = {
            let mut calls = self.lock_calls();
            if calls.closed {
                return;
            }
            calls.closed = true;
            std::mem::take(&mut *calls)
        };
        self.0.outbox.close();
        self.0.closed.cancel();
        for (_, waiter) in calls.pending {
            let _ = waiter.send(Err(Error::Disconnected {
                actor: self.peer().clone(),
            }));
        }
        for (_, token) in calls.serving {
            token.cancel();
        }
    }

    /// Waits until every frame queued so far has been written.
    pub(crate) async fn flushed(&self) {
        self.0.outbox.flushed().await
    }

    fn lock_calls(&self) -> MutexGuard<'_, Calls> {
        self.0
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends a call of `func` and returns the future of its answer.
    pub(crate) fn call(&self, func: &str, args: &[u8]) -> Result<PendingCall, Error> {
        self.request(
            |id| Msg::Call { id, func },
            |buf| {
                buf.extend_from_slice(args);
                Ok(())
            },
            true,
        )
    }

    /// Asks the peer to cancel itself within `grace`; the answer arrives as
    /// the returned call's `Return`. Dropping the answer does not withdraw
    /// the request.
    pub(crate) fn cancel_actor(&self, grace: Duration) -> Result<PendingCall, Error> {
        let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
        self.request(|id| Msg::CancelActor { id, grace_ms }, |_| Ok(()), false)
    }

    /// Registers a new call id, then sends `header(id)` with `payload`.
    fn request<'a>(
        &self,
        header: impl FnOnce(u64) -> Msg<'a>,
        payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
        cancel_on_drop: bool,
    ) -> Result<PendingCall, Error> {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut calls = self.lock_calls();
            if calls.closed {
                return Err(Error::Disconnected {
                    actor: self.peer().clone(),
                });
            }
            calls.pending.insert(id, tx);
        }
        if let Err(err) = self.push(&header(id), payload) {
            self.lock_calls().pending.remove(&id);
            return Err(err);
        }
        Ok(PendingCall {
            channel: self.clone(),
            id,
            answer: rx,
            done: !cancel_on_drop,
        })
    }

    /// An answer arrived for our call `id`.
    pub(crate) fn complete(&self, id: u64, answer: Result<Bytes, Error>) {
        let waiter = self.lock_calls().pending.remove(&id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(answer);
            }
            None => tracing::trace!(peer = %self.peer(), id, "answer to a call nobody awaits"),
        }
    }

    /// Records that we are running the peer's call `id`; `token` is
    /// cancelled if the peer cancels the call or goes away. Returns `false`
    /// if the channel is already closed.
    pub(crate) fn serve(&self, id: u64, token: CancellationToken) -> bool {
        let mut calls = self.lock_calls();
        if calls.closed {
            return false;
        }
        calls.serving.insert(id, token);
        true
    }

    /// The peer's call `id` is over.
    pub(crate) fn served(&self, id: u64) {
        self.lock_calls().serving.remove(&id);
    }

    /// The peer gave up on its call `id`.
    pub(crate) fn cancel_served(&self, id: u64) {
        if let Some(token) = self.lock_calls().serving.remove(&id) {
            token.cancel();
        }
    }

    /// Answers the peer's call `id` with an encoded value.
    pub(crate) fn send_return(&self, id: u64, payload: &[u8]) {
        self.send(&Msg::Return { id }, |buf| {
            buf.extend_from_slice(payload);
            Ok(())
        });
    }

    /// Answers the peer's call `id` with an error.
    pub(crate) fn send_error(&self, id: u64, error: &WireError) {
        self.send(&Msg::Error { id }, |buf| frame::encode_into(buf, error));
    }

    /// Queues a frame; a closed channel is [`Error::Disconnected`].
    fn push(
        &self,
        header: &Msg<'_>,
        payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match self.0.outbox.push(header, payload) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Disconnected {
                actor: self.peer().clone(),
            }),
            Err(err) => Err(err),
        }
    }

    /// Queues a frame nobody waits on; failures are only logged.
    fn send(&self, header: &Msg<'_>, payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>) {
        match self.push(header, payload) {
            Ok(()) | Err(Error::Disconnected { .. }) => {}
            Err(err) => tracing::warn!(peer = %self.peer(), "could not send {header:?}: {err}"),
        }
    }
}

/// The answer to one of our calls. Dropping it before the answer arrives
/// tells the peer to cancel the call.
pub(crate) struct PendingCall {
    channel: Channel,
    id: u64,
    answer: oneshot::Receiver<Result<Bytes, Error>>,
    done: bool,
}

impl Future for PendingCall {
    type Output = Result<Bytes, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = ready!(Pin::new(&mut self.answer).poll(cx));
        self.done = true;
        Poll::Ready(answer.unwrap_or_else(|_| {
            Err(Error::Disconnected {
                actor: self.channel.peer().clone(),
            })
        }))
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let was_pending = self.channel.lock_calls().pending.remove(&self.id).is_some();
        if was_pending {
            let id = self.id;
            self.channel.send(&Msg::Cancel { id }, |_| Ok(()));
        }
    }
}
