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

type Waiting = Pin<Box<dyn Future<Output = ()> + Send>>;

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
    /// The outbox was full at the last flush: waiting for room, the batch
    /// still here (so a hang-up can send it, in order).
    waiting: Option<Waiting>,
    /// `poll_close` ran (or the stream was dropped): nothing more is sent.
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
            waiting: None,
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

    /// Encodes `item` into the batch; `poll_ready` must have said yes. An
    /// item that does not encode leaves the batch as it was.
    pub(crate) fn start_send<T: Serialize>(&mut self, item: &T) -> Result<()> {
        if self.held == 0 {
            return Err(Error::Misuse(
                "Sink::start_send without a successful poll_ready first".into(),
            ));
        }
        let before = self.batch.len();
        if let Err(err) = frame::encode_into(&mut self.batch, item) {
            self.batch.truncate(before);
            return Err(err);
        }
        self.held -= 1;
        self.n += 1;
        Ok(())
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            if self.n == 0 {
                self.waiting = None;
                return Poll::Ready(Ok(()));
            }
            if let Some(waiting) = &mut self.waiting {
                ready!(waiting.as_mut().poll(cx));
                self.waiting = None;
            }
            // The receiver hung up: what we hold would be thrown away.
            if self.credit.is_closed() {
                return Poll::Ready(Err(self.refused()));
            }
            let n = self.n;
            match self
                .channel
                .try_send_batch(self.direction, self.id, n, &self.batch)
            {
                Some(sent) => {
                    let bytes = self.batch.len();
                    self.batch.clear();
                    self.n = 0;
                    return Poll::Ready(match sent {
                        Ok(()) => {
                            self.credit.spend_bytes(bytes);
                            Ok(())
                        }
                        // Not sent (too large): the credit stays ours.
                        Err(err) => {
                            self.credit.give_back(n);
                            Err(err)
                        }
                    });
                }
                None => self.waiting = Some(Box::pin(self.channel.room())),
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
        self.channel.send_end(self.direction, self.id, false);
        Poll::Ready(Ok(()))
    }

    /// This side dropped its stream: what is batched still goes (past the
    /// outbox's mark, one batch at most), then, if `end`, the end, saying
    /// that this side reads nothing more either (otherwise whoever
    /// deferred it sends it).
    pub(crate) fn hang_up(&mut self, end: bool) {
        self.closed = true;
        let n = std::mem::take(&mut self.n);
        if n > 0 && !self.credit.is_closed() {
            self.channel
                .send_batch_now(self.direction, self.id, n, &self.batch);
        }
        if end {
            self.channel.send_end(self.direction, self.id, true);
        }
    }
}
