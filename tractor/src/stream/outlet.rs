//! The sending half of a context's stream: items are encoded into a local
//! batch and go out as one frame when the batch is full, when the sender
//! runs out of credit, or on flush.
//!
//! This is a `Sink`'s life: `poll_ready` buys credit in bulk (one atomic
//! operation for many items), `start_send` only encodes, and the frame is
//! queued on `poll_flush` (`SinkExt::send` flushes every item; `feed`,
//! `send_all` and `forward` let batches form).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ipc::channel::Direction;
use crate::ipc::{Channel, Credit, frame};

/// A batch is sent once it holds this many bytes...
pub(crate) const BATCH_BYTES: usize = 32 * 1024;
/// ...or this many items.
pub(crate) const BATCH_ITEMS: u32 = 4096;

type Pushing = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

pub(crate) struct Outlet {
    channel: Channel,
    id: u64,
    direction: Direction,
    credit: Arc<Credit>,
    /// Credit bought and not yet spent.
    held: u32,
    batch: BytesMut,
    /// Items in `batch`.
    n: u32,
    /// The batch may grow to this many bytes before it must go: the bytes
    /// left when credit was last looked at (they only grow meanwhile), at
    /// most [`BATCH_BYTES`]. Kept here so that an item costs no atomic
    /// operation.
    fill_to: usize,
    /// A batch that found the outbox full, waiting for room.
    pushing: Option<Pushing>,
    /// `poll_close` ran: nothing more is sent.
    closed: bool,
}

impl Outlet {
    pub(crate) fn new(
        channel: Channel,
        id: u64,
        direction: Direction,
        credit: Arc<Credit>,
    ) -> Self {
        Outlet {
            channel,
            id,
            direction,
            credit,
            held: 0,
            batch: BytesMut::new(),
            n: 0,
            fill_to: 0,
            pushing: None,
            closed: false,
        }
    }

    fn refused(&self) -> Error {
        if self.channel.is_closed() {
            Error::Disconnected {
                actor: self.channel.peer().clone(),
            }
        } else {
            Error::StreamClosed {
                actor: self.channel.peer().clone(),
            }
        }
    }

    #[inline]
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        // The usual case: credit in hand, room in the batch.
        if self.held > 0 && self.n < BATCH_ITEMS && self.batch.len() < self.fill_to {
            return Poll::Ready(Ok(()));
        }
        let ready = self.poll_ready_slow(cx);
        let left = usize::try_from(self.credit.bytes_left()).unwrap_or(0);
        self.fill_to = left.min(BATCH_BYTES);
        ready
    }

    fn poll_ready_slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.closed {
            return Poll::Ready(Err(Error::Misuse(
                "this stream's sending half was closed: it sends nothing more".into(),
            )));
        }
        ready!(self.poll_pushing(cx))?;
        // The batch goes once full, or once it uses up the bytes left.
        let batched = i64::try_from(self.batch.len()).unwrap_or(i64::MAX);
        if self.n >= BATCH_ITEMS
            || self.batch.len() >= BATCH_BYTES
            || (self.n > 0 && batched >= self.credit.bytes_left())
        {
            ready!(self.poll_flush(cx))?;
        }
        if self.held > 0 && self.credit.bytes_left() > 0 {
            return Poll::Ready(Ok(()));
        }
        // Out of credit: what we hold must go first, or the receiver
        // never sees the items it would grant more credit for.
        if self.n > 0 {
            ready!(self.poll_flush(cx))?;
        }
        if self.held > 0 {
            return match ready!(self.credit.poll_bytes(cx)) {
                true => Poll::Ready(Ok(())),
                false => Poll::Ready(Err(self.refused())),
            };
        }
        match ready!(self.credit.poll_take_up_to(cx, BATCH_ITEMS)) {
            0 => Poll::Ready(Err(self.refused())),
            taken => {
                self.held = taken;
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Encodes `item` into the batch; `poll_ready` must have said yes.
    pub(crate) fn start_send<T: Serialize>(&mut self, item: &T) -> Result<()> {
        if self.held == 0 {
            return Err(Error::Misuse(
                "Sink::start_send without a successful poll_ready first".into(),
            ));
        }
        frame::encode_into(&mut self.batch, item)?;
        self.held -= 1;
        self.n += 1;
        Ok(())
    }

    fn poll_pushing(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(pushing) = &mut self.pushing {
            let pushed = ready!(pushing.as_mut().poll(cx));
            self.pushing = None;
            pushed?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_pushing(cx))?;
        if self.n == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = std::mem::take(&mut self.n);
        self.credit.spend_bytes(self.batch.len());
        match self
            .channel
            .try_send_batch(self.direction, self.id, n, &self.batch)
        {
            Some(sent) => {
                self.batch.clear();
                Poll::Ready(sent)
            }
            None => {
                let batch = std::mem::take(&mut self.batch).freeze();
                let (channel, direction, id) = (self.channel.clone(), self.direction, self.id);
                self.pushing = Some(Box::pin(async move {
                    channel
                        .send_items(direction, id, n, |buf| {
                            buf.extend_from_slice(&batch);
                            Ok(())
                        })
                        .await
                }));
                self.poll_pushing(cx)
            }
        }
    }

    /// Flushes, then tells the receiver that nothing more comes.
    pub(crate) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_flush(cx))?;
        self.closed = true;
        self.give_back();
        self.channel.send_end(self.direction, self.id, false);
        Poll::Ready(Ok(()))
    }

    /// Credit bought and not spent goes back to the pool, for a clone of
    /// nobody: it only keeps the count honest.
    fn give_back(&mut self) {
        self.credit.give_back(std::mem::take(&mut self.held));
    }

    /// This side dropped its stream: what is batched still goes (past the
    /// outbox's mark, one batch at most), then, if `end`, the end, saying
    /// that this side reads nothing more either (otherwise whoever
    /// deferred it sends it).
    pub(crate) fn hang_up(&mut self, end: bool) {
        self.closed = true;
        let n = std::mem::take(&mut self.n);
        let (channel, direction, id) = (self.channel.clone(), self.direction, self.id);
        let Some(pushing) = self.pushing.take() else {
            if n > 0 {
                channel.send_batch_now(direction, id, n, &self.batch);
            }
            if end {
                channel.send_end(direction, id, true);
            }
            return;
        };
        // A batch waits for room: the rest follows it, in order.
        let batch = std::mem::take(&mut self.batch).freeze();
        let rest = async move {
            if pushing.await.is_ok() && n > 0 {
                let _ = channel
                    .send_items(direction, id, n, |buf| {
                        buf.extend_from_slice(&batch);
                        Ok(())
                    })
                    .await;
            }
            if end {
                channel.send_end(direction, id, true);
            }
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(rest);
        }
    }
}
